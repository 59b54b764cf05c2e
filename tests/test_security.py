"""The security pass (issue F): secrets through every command, crafted archives, hostile
names, safe YAML only, visible migration-file checksums.

Secrets used: the provider keys and the proxy master key (``KEY_ENV``), the virtual keys
the dataset holds (``CANARYvirtualKEY``), a MongoDB password in the URI (a private
SecantusDB with a real user, so the success paths run authenticated), a Redis password
in a Redis URL. None may appear in stdout, stderr, JSON, the plan, the ledger, the lock,
the verify records or an archive manifest.

The journal is the one deliberate exception: to restore a document exactly, it must keep
the before-image of every field the migration changed, and a changed field can be an
``api_key`` holding the proxy's virtual or master key. So the journal holds old keys, only
inside its ``before`` images and only under key fields (asserted below), and no command
ever prints them (dry-run rollback shows them masked). The rewritten documents hold the
new direct keys: that is the migration's purpose.

Docker-side checks (a real decommission's archive manifest, hostile compose names) are in
tests/test_security_docker.py.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from layra_migrate.sandbox.layra_data import build_dataset, seed_database
from layra_migrate.sandbox.litellm_config import write_litellm_config
from layra_migrate.sandbox.servers import Server, free_port, start_mongo
from tests.conftest import ALL_CANARIES, KEY_ENV, REPO, CliResult, run_cli

MONGO_PASSWORD = "CANARYpassMONGOuri0000"
REDIS_PASSWORD = "CANARYpassREDIS0000"
SECRETS = [*ALL_CANARIES, MONGO_PASSWORD, REDIS_PASSWORD]
PACKAGE = REPO / "layra_migrate"


def assert_clean(*texts: str, where: str = "") -> None:
    for text in texts:
        for s in SECRETS:
            assert s not in text, f"secret {s[:14]}... leaked {where}: ...{_around(text, s)}..."


def _around(text: str, s: str) -> str:
    i = text.find(s)
    return text[max(0, i - 80) : i + 20].replace(s[4:], "<SECRET>")


def _no_traceback(r: CliResult) -> None:
    assert "Traceback" not in r.stderr, r.stderr[-2000:]


# -- an authenticated MongoDB of our own ---------------------------------------------------


@pytest.fixture(scope="module")
def auth_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    if os.environ.get("LAYRA_MIGRATE_TEST_MONGO_URI"):
        pytest.skip("needs the SecantusDB the suite starts (a user is created on it)")
    from pymongo import MongoClient

    server = start_mongo(tmp_path_factory.mktemp("authmongo") / "data")
    try:
        c: Any = MongoClient(server.uri, serverSelectionTimeoutMS=10_000)
        c.admin.command("createUser", "layra", pwd=MONGO_PASSWORD, roles=["root"])
        c.close()
        uri = (
            f"mongodb://layra:{MONGO_PASSWORD}@127.0.0.1:{server.port}/"
            "?authSource=admin&directConnection=true"
        )
        yield server, uri
    finally:
        server.stop()


class Session:
    """Runs commands as an operator would and keeps every output for the leak check."""

    def __init__(self, uri: str, db: str, cwd: Path) -> None:
        self.env = {"LAYRA_MIGRATE_MONGO_URI": uri, "LAYRA_MIGRATE_DB": db, **KEY_ENV}
        self.cwd = cwd
        self.outputs: list[tuple[str, CliResult]] = []

    def __call__(
        self, *args: str, expect: int | tuple[int, ...] = 0, env: dict[str, str] | None = None
    ) -> CliResult:
        r = run_cli(*args, env={**self.env, **(env or {})}, cwd=self.cwd, timeout=180)
        codes = expect if isinstance(expect, tuple) else (expect,)
        assert r.code in codes, (args, r.code, r.stderr[-3000:])
        _no_traceback(r)
        if "--json" in args:
            json.loads(r.stdout)  # exactly one JSON object, even on failure
        self.outputs.append((" ".join(args), r))
        assert_clean(r.stdout, r.stderr, where=f"by `{' '.join(args)}`")
        return r


def _tool_docs(db: Any, name: str) -> list[dict[str, Any]]:
    return list(db[name].find()) if name in db.list_collection_names() else []


@pytest.mark.slow
def test_no_secret_in_any_output_or_record_of_any_command(
    auth_mongo: tuple[Server, str], tmp_path: Path
) -> None:
    from pymongo import MongoClient

    from layra_migrate.sandbox.provider_stub import ProviderStub

    server, uri = auth_mongo
    client: Any = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    name = "layra_sec"
    db = client[name]
    seed_database(db, build_dataset(users=15, seed=99))
    cfg = write_litellm_config(tmp_path / "litellm")
    plan = tmp_path / "plan.yaml"
    run = Session(uri, name, tmp_path)
    both = ("-v", "--debug")

    # Phase 1: audit (human and JSON, the plan file)
    run("audit", "--litellm-config", str(cfg), "--plan-out", str(plan), "--json", *both)
    run("audit", "--litellm-config", str(cfg), *both)
    assert_clean(plan.read_text(), where="in the plan")
    # the Layra env names with the password in MONGODB_ROOT_PASSWORD, from an env file
    env_file = tmp_path / "layra.env"
    env_file.write_text(
        f"MONGODB_URL=127.0.0.1:{server.port}\nMONGODB_ROOT_USERNAME=layra\n"
        f"MONGODB_ROOT_PASSWORD={MONGO_PASSWORD}\nMONGODB_DB={name}\n"
    )
    run(
        "audit",
        "--env-file",
        str(env_file),
        "--json",
        *both,
        env={"LAYRA_MIGRATE_MONGO_URI": "", "LAYRA_MIGRATE_DB": ""},
    )

    # Phase 2: dry runs, check, the rewrite, status
    run("rewrite", "--plan", str(plan), "--dry-run", "--skip-unresolved", *both)
    run("rewrite", "--plan", str(plan), "--dry-run", "--skip-unresolved", "--json", *both)
    run("check", "--plan", str(plan), "--json", *both)
    run("check", "--plan", str(plan), *both)
    # failure paths before any write: blocking names, a missing key, a bad plan, bad Redis
    run("rewrite", "--plan", str(plan), "--yes", "--json", *both, expect=4)
    run(
        "rewrite", "--plan", str(plan), "--yes", *both, expect=4, env={"DEEPSEEK_API_KEY": ""}
    )  # a missing key blocks (--skip-unresolved would skip)
    run("rewrite", "--plan", str(tmp_path / "missing.yaml"), "--yes", *both, expect=2)
    run(
        "rewrite",
        "--plan",
        str(plan),
        "--yes",
        "--skip-unresolved",
        "--redis-url",
        f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0",
        "--json",
        *both,
        expect=3,
    )
    run(
        "rewrite",
        "--plan",
        str(plan),
        "--yes",
        "--skip-unresolved",
        *both,
        expect=2,
        env={"LAYRA_MIGRATE_MONGO_URI": uri.replace(MONGO_PASSWORD, MONGO_PASSWORD + "x")},
    )
    run(
        "status",
        *both,
        expect=3,
        env={"LAYRA_MIGRATE_MONGO_URI": uri.replace(str(server.port), str(free_port()))},
    )
    run("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", *both)
    run("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--json", *both)  # no-op
    st = run("status", "--json", *both).json()
    run("status", *both)

    # Phase 3: verify, success (the operator points the plan at a stub) and failure paths
    stub_plan = tmp_path / "stub-plan.yaml"
    with ProviderStub(behaviours={"kimi-k2:1t": "401"}) as stub:
        body = yaml.safe_load(plan.read_text())
        for entry in (body.get("models") or {}).values():
            if entry.get("target"):
                entry["target"]["base_url"] = stub.base_url
        stub_plan.write_text(yaml.safe_dump(body))
        run("verify", "--plan", str(stub_plan), "--json", *both, expect=(0, 5))
        run("verify", "--plan", str(stub_plan), "--timeout", "5", *both, expect=(0, 5))
        recorded = [r.api_key for r in stub.requests if r.api_key]
    assert recorded and set(recorded) <= set(KEY_ENV.values())  # the keys were really sent
    run("verify", "--json", "--timeout", "3", "--concurrency", "16", *both, expect=(0, 5))

    # Phase 2 again: rollback dry run (before-images shown masked), the rollback
    run("rollback", "--dry-run", "--json", *both)
    run("rollback", "--dry-run", *both)
    run("rollback", "--yes", *both)
    run("rollback", "--yes", "--json", *both)  # nothing left: a no-op

    # new and unlock, success and failure
    folder = tmp_path / "migrations"
    folder.mkdir()
    run("new", "rotate keys", "--migrations-dir", str(folder), "--json", "--debug")
    run(
        "new",
        "bad/name;rm -rf",
        "--migrations-dir",
        str(folder / "nope" / "x"),
        "--debug",
        expect=(0, 2),
    )
    run("unlock", "--if-stale", "--json", *both)
    from layra_migrate.engine.lock import now

    db["layra_migrate_lock"].insert_one(
        {
            "_id": "layra-migrate",
            "owner": "o",
            "holder": "ops@box",
            "pid": 1,
            "command": "rewrite",
            "acquired_at": now(),
            "expires_at": now().replace(year=2100),
        }
    )
    run("unlock", "--if-stale", *both, expect=4)
    run("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--json", *both, expect=4)
    db["layra_migrate_lock"].delete_many({})

    # Phase 4 without a Docker engine: the failure paths (the success paths with a real
    # engine are in test_security_docker.py)
    no_docker = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    run("decommission", "--dry-run", "--json", *both, env=no_docker, expect=3)
    run("decommission", "--dry-run", *both, env=no_docker, expect=(3, 4))
    run("restore", str(tmp_path), "--yes", *both, env=no_docker, expect=2)

    # The records: ledger, lock, verify runs, decommission records carry no secret.
    for coll in (
        "layra_migrate_ledger",
        "layra_migrate_lock",
        "layra_migrate_verify",
        "layra_migrate_decommission",
    ):
        assert_clean(repr(_tool_docs(db, coll)), where=f"in {coll}")
    # The journal: old keys only inside before-images, under key fields.
    journal = _tool_docs(db, "layra_migrate_journal")
    assert journal
    holding = 0
    for e in journal:
        assert_clean(
            repr({k: v for k, v in e.items() if k != "before"}),
            where="in a journal entry outside its before-image",
        )
        for item in e["before"]:
            if any(s in repr(item.get("v")) for s in SECRETS):
                holding += 1
                leaf = item["p"].rsplit(".", 1)[-1]
                assert leaf in ("api_key", "apiKey"), item["p"]
    assert holding > 0  # by design: the proxy's keys must come back on rollback
    # status shows each applied file's checksum
    assert st["migrations"][0]["file_checksum"] and st["migrations"][0]["state"] == "applied"
    client.close()


def test_status_shows_each_applied_files_checksum(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    import shutil

    from layra_migrate.engine.discovery import default_dir

    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(default_dir() / "0001_litellm_to_direct.py", folder)
    (folder / "0002_noop.py").write_text(
        "id = '0002_noop'\ndescription = 'nothing'\nasync def up(ctx):\n    pass\n"
    )
    plan = tmp_path / "plan.yaml"
    assert (
        cli(
            "audit", "--litellm-config", str(litellm_config), "--plan-out", str(plan), env=KEY_ENV
        ).code
        == 0
    )
    assert (
        cli(
            "rewrite",
            "--plan",
            str(plan),
            "--yes",
            "--skip-unresolved",
            "--migrations-dir",
            str(folder),
            env=KEY_ENV,
        ).code
        == 0
    )
    sums = {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.py")}
    data = cli("status", "--json", "--migrations-dir", str(folder)).json()
    for row in data["migrations"]:
        assert row["state"] == "applied"
        assert row["file_checksum"] == row["recorded_checksum"] == sums[row["id"]]
    human = cli("status", "--migrations-dir", str(folder))
    assert human.code == 0
    for digest in sums.values():
        assert digest[:8] in human.stdout
    # an edited file shows both checksums, flagged
    with (folder / "0002_noop.py").open("a") as fh:
        fh.write("# edited\n")
    edited = hashlib.sha256((folder / "0002_noop.py").read_bytes()).hexdigest()
    human = cli("status", "--migrations-dir", str(folder))
    assert f"{edited[:8]} (CHANGED, was {sums['0002_noop'][:8]})" in human.stdout


# -- safe YAML only ------------------------------------------------------------------------

HOSTILE_YAML = [
    "!!python/object/apply:os.system ['touch {sentinel}']\n",
    "format: layra-migrate/plan/v1\nproxy_urls: !!python/object/apply:os.system "
    "['touch {sentinel}']\n",
    "format: layra-migrate/plan/v1\nproxy_urls: [http://litellm:4000]\nmodels:\n"
    "  x: !!python/object/new:subprocess.Popen [['touch', '{sentinel}']]\n",
    "model_list: !!python/name:os.system\n",
]


@pytest.mark.parametrize("body", HOSTILE_YAML)
def test_yaml_constructing_python_objects_is_refused_with_exit_2(
    db: Any, cli: Any, tmp_path: Path, body: str
) -> None:
    sentinel = tmp_path / "PWNED"
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(body.format(sentinel=sentinel))
    runs = [
        cli("rewrite", "--plan", str(hostile), "--yes", "--json", env=KEY_ENV),
        cli("rewrite", "--plan", str(hostile), "--dry-run", env=KEY_ENV),
        cli("verify", "--plan", str(hostile), "--json"),
        cli("check", "--plan", str(hostile)),
        cli("audit", "--litellm-config", str(hostile), "--json"),
    ]
    for r in runs:
        assert r.code == 2, (r.code, r.stderr)
        assert "hostile.yaml" in r.stderr and "Traceback" not in r.stderr
    assert not sentinel.exists()
    assert "layra_migrate_ledger" not in db.list_collection_names()


def test_every_yaml_load_in_the_package_is_safe() -> None:
    """Only yaml.safe_load (or SafeLoader-based loaders) anywhere in the package."""
    unsafe = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
                and node.attr
                in (
                    "load",
                    "load_all",
                    "unsafe_load",
                    "unsafe_load_all",
                    "full_load",
                    "full_load_all",
                    "Loader",
                    "UnsafeLoader",
                    "FullLoader",
                )
            ):
                unsafe.append(f"{path.relative_to(REPO)}:{node.lineno} yaml.{node.attr}")
    assert not unsafe, unsafe


# -- hostile names never reach a shell -----------------------------------------------------


def test_no_shell_anywhere_in_the_package() -> None:
    """No shell=True, os.system/popen/exec*; subprocess only in the test sandbox helpers;
    Docker exec commands are argument lists, never a string a shell would parse."""
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text(), rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                problems.append(f"{rel}:{node.value.lineno} shell=")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "os" and node.attr in (
                    "system",
                    "popen",
                    "execv",
                    "execvp",
                    "execve",
                    "execl",
                    "execlp",
                    "spawnv",
                    "spawnl",
                    "posix_spawn",
                ):
                    problems.append(f"{rel}:{node.lineno} os.{node.attr}")
                if node.value.id == "subprocess" and not rel.startswith("layra_migrate/sandbox/"):
                    problems.append(f"{rel}:{node.lineno} subprocess.{node.attr}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names]
                mod = getattr(node, "module", None) or ""
                if (
                    "subprocess" in names or mod == "subprocess" or "pty" in names
                ) and not rel.startswith("layra_migrate/sandbox/"):
                    problems.append(f"{rel}:{node.lineno} imports subprocess/pty")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("exec_create", "exec_run")
            ):
                cmd = (
                    node.args[1]
                    if node.func.attr == "exec_create" and len(node.args) > 1
                    else node.args[0]
                    if node.func.attr == "exec_run" and node.args
                    else None
                )
                for kw in node.keywords:
                    if kw.arg == "cmd":
                        cmd = kw.value
                if cmd is None or isinstance(cmd, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                    problems.append(f"{rel}:{node.lineno} {node.func.attr} with a string command")
    assert not problems, problems


def test_exec_commands_are_argument_lists_with_hostile_names() -> None:
    """The dump builds its exec commands from container data (user, database name):
    a hostile value stays one argument, never shell syntax."""
    from layra_migrate.decommission import dump

    src = Path(dump.__file__).read_text()
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "exec_create":
            # the command expression must not be an f-string or a concatenation
            cmd = (
                node.args[1]
                if len(node.args) > 1
                else next((k.value for k in node.keywords if k.arg == "cmd"), None)
            )
            assert cmd is not None and not isinstance(cmd, (ast.JoinedStr, ast.BinOp, ast.Constant))
    assert '"sh", "-c"' not in src and "'sh', '-c'" not in src


def test_hostile_project_names_are_data_not_code(tmp_path: Path) -> None:
    sentinel = tmp_path / "PWNED"
    for project in (
        f"x; touch {sentinel}",
        f"a' && touch '{sentinel}",
        f"$(touch {sentinel})",
        f"`touch {sentinel}`",
        'name with spaces"quote',
    ):
        r = run_cli(
            "decommission",
            "--project",
            project,
            "--dry-run",
            "--json",
            env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
            cwd=tmp_path,
        )
        assert r.code in (2, 3), r.stderr
        assert "Traceback" not in r.stderr
    assert not sentinel.exists()


# -- crafted archives for restore ----------------------------------------------------------


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def _good_archive(root: Path, volume_tar: bytes | None = None) -> Path:
    from layra_migrate.decommission.archive import ArchiveWriter
    from layra_migrate.decommission.models import MANIFEST_SCHEMA

    w = ArchiveWriter.create(root)
    w.write_bytes(
        "volumes/p_data.tar", volume_tar or _tar([(_info("data/a"), b"payload")]), "volume"
    )
    w.write_bytes("compose/workdir/.env", b"OPENAI_API_KEY=sk-proj-CANARYarchived\n", "compose")
    w.write_manifest(
        {
            "schema": MANIFEST_SCHEMA,
            "project": "p",
            "complete": True,
            "containers": [],
            "volumes": [{"name": "p_data", "member": "volumes/p_data.tar"}],
            "members": [m.as_dict() for m in w.members],
        }
    )
    return w.root


def _resum(root: Path) -> None:
    """What a forger does: recompute SHA256SUMS after tampering."""
    lines = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name != "SHA256SUMS":
            lines.append(
                f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}"
            )
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in folder.rglob("*")
    }


def _craft_lying_checksum(root: Path, outside: Path) -> None:
    p = root / "volumes/p_data.tar"
    p.write_bytes(_tar([(_info("data/a"), b"PAYLOAD")]))  # same size, other content


def _craft_dotdot_in_sums(root: Path, outside: Path) -> None:
    target = outside / "victim.txt"
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    with (root / "SHA256SUMS").open("a") as fh:
        fh.write(f"{digest}  ../{outside.name}/victim.txt\n")


def _craft_absolute_in_sums(root: Path, outside: Path) -> None:
    target = outside / "victim.txt"
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    with (root / "SHA256SUMS").open("a") as fh:
        fh.write(f"{digest}  {target}\n")


def _craft_member_symlink_outside(root: Path, outside: Path) -> None:
    p = root / "volumes/p_data.tar"
    (outside / "p_data.tar").write_bytes(p.read_bytes())
    p.unlink()
    p.symlink_to(outside / "p_data.tar")  # same content: the checksum still matches


def _craft_dir_symlink_outside(root: Path, outside: Path) -> None:
    (root / "volumes" / "escape").symlink_to(outside, target_is_directory=True)


def _craft_tar_dotdot(root: Path, outside: Path) -> None:
    (root / "volumes/p_data.tar").write_bytes(_tar([(_info("data/../../victim.txt"), b"x")]))
    _resum(root)


def _craft_tar_absolute(root: Path, outside: Path) -> None:
    (root / "volumes/p_data.tar").write_bytes(_tar([(_info(str(outside / "victim.txt")), b"x")]))
    _resum(root)


def _craft_tar_symlink_then_write_through(root: Path, outside: Path) -> None:
    (root / "volumes/p_data.tar").write_bytes(
        _tar(
            [
                (_info("data/link", tarfile.SYMTYPE, str(outside)), None),
                (_info("data/link/victim.txt"), b"overwritten"),
            ]
        )
    )
    _resum(root)


def _craft_tar_relative_symlink_escape(root: Path, outside: Path) -> None:
    (root / "volumes/p_data.tar").write_bytes(
        _tar([(_info("data/sub/link", tarfile.SYMTYPE, "../../../outside"), None)])
    )
    _resum(root)


def _craft_tar_hardlink_outside(root: Path, outside: Path) -> None:
    (root / "volumes/p_data.tar").write_bytes(
        _tar([(_info("data/h", tarfile.LNKTYPE, "../../etc/passwd"), None)])
    )
    _resum(root)


def _craft_manifest_member_dotdot(root: Path, outside: Path) -> None:
    m = json.loads((root / "manifest.json").read_text())
    m["members"].append({"path": "../outside/victim.txt", "size": 1, "sha256": "0" * 64})
    (root / "manifest.json").write_text(json.dumps(m))
    _resum(root)


def _craft_manifest_not_covered(root: Path, outside: Path) -> None:
    lines = [
        ln
        for ln in (root / "SHA256SUMS").read_text().splitlines()
        if not ln.endswith("manifest.json")
    ]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _craft_truncated_tar(root: Path, outside: Path) -> None:
    big = _tar([(_info("data/a"), os.urandom(20_000))])
    (root / "volumes/p_data.tar").write_bytes(big[:5000])
    _resum(root)


def _craft_tar_device_node(root: Path, outside: Path) -> None:
    dev = _info("data/disk", tarfile.CHRTYPE)
    dev.devmajor, dev.devminor = 8, 0  # /dev/sda, inside a container that mounts the volume
    (root / "volumes/p_data.tar").write_bytes(_tar([(dev, None)]))
    _resum(root)


CRAFTED = [
    _craft_tar_device_node,
    _craft_lying_checksum,
    _craft_dotdot_in_sums,
    _craft_absolute_in_sums,
    _craft_member_symlink_outside,
    _craft_dir_symlink_outside,
    _craft_tar_dotdot,
    _craft_tar_absolute,
    _craft_tar_symlink_then_write_through,
    _craft_tar_relative_symlink_escape,
    _craft_tar_hardlink_outside,
    _craft_manifest_member_dotdot,
    _craft_manifest_not_covered,
    _craft_truncated_tar,
]


@pytest.mark.parametrize("craft", CRAFTED, ids=[c.__name__[7:] for c in CRAFTED])
def test_restore_refuses_a_crafted_archive_and_writes_nothing_outside(
    tmp_path: Path, craft: Any
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("original\n")
    root = _good_archive(tmp_path / "arch")
    craft(root, outside)
    before_outside = _snapshot(outside)
    before_archive = _snapshot(root)
    # A Docker engine that does not exist: reaching it would be exit 3, so exit 5 (or 2)
    # proves the refusal came first, before anything could be touched.
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    for extra in ((), ("--json",), ("-v", "--debug")):
        r = run_cli("restore", str(root), "--yes", *extra, env=env, cwd=tmp_path)
        assert r.code in (2, 5), (craft.__name__, r.code, r.stderr)
        assert "Traceback" not in r.stderr
        assert "CANARYarchived" not in r.stdout + r.stderr
    assert r.code == 5, (craft.__name__, r.stderr)  # verification failed, nothing touched
    assert _snapshot(outside) == before_outside
    assert _snapshot(root) == before_archive
    assert not (tmp_path / "victim.txt").exists()


def test_the_untampered_archive_passes_verification(tmp_path: Path) -> None:
    """The control for the crafted cases: the same archive, untouched, gets past the
    checksums (and then needs Docker: exit 3)."""
    root = _good_archive(tmp_path / "arch")
    r = run_cli(
        "restore",
        str(root),
        "--yes",
        env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
        cwd=tmp_path,
    )
    assert r.code == 3, r.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_library_logs_are_silent_or_scrubbed(
    debug: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyMongo's background tasks log whole tracebacks (e.g. killing cursors on a server
    that went away). Without --debug they must not break the one-line error; with it they
    are shown scrubbed, traceback included."""
    import logging

    from layra_migrate.cli.common import make_output, setup_logging

    secret = KEY_ENV["OPENAI_API_KEY"]
    setup_logging(make_output(debug=debug))
    try:
        try:
            raise ConnectionError(f"lost 127.0.0.1:1 with key {secret}")
        except ConnectionError:
            logging.getLogger("pymongo.client").exception(
                "MongoClient background task encountered an error:"
            )
        logging.getLogger("docker.utils").warning("auth %s", secret)
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert secret not in err
    if debug:
        assert "Traceback" in err and "ConnectionError: lost" in err
    else:
        assert err == ""
