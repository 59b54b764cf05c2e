"""The whole four-phase job, for real, against a sandbox it starts itself.

    python -m layra_migrate.sandbox [--users N] [--keep] [--workdir DIR]
    python -m layra_migrate.sandbox --mongo-uri URI --db NAME   # rehearse on a restored dump

It starts SecantusDB (a MongoDB wire-protocol server, separate process) seeded
with realistic Layra data, Redis when ``redis-server`` is installed, and an
OpenAI-compatible provider stub on loopback standing in for the direct
providers; writes a realistic LiteLLM config whose routes point at the stub;
then runs the real CLI commands an operator runs, showing each one's output.

When a Docker engine is reachable (``DOCKER_HOST`` or the default socket), or when
none is but the job runs as root with ``dockerd`` installed (then it starts a private
engine as the tests do: layra_migrate/sandbox/private_engine.py), and a static busybox
is installed, it also starts a fake LiteLLM stack there
(layra_migrate/sandbox/docker_stack.py: images ``layra-sandbox-<id>/*`` imported from
busybox, no registry; compose project ``layra-sandbox-<id>`` with its volumes and
network; compose directory in the work folder) and runs a real ``decommission``
(forced past the interlock, archive in the work folder) and ``restore``, then removes
the stack's containers, volumes, network and images (and stops the private engine).
Without Docker it says plainly why, and shows only what decommission answers then
(exit 3, Docker unreachable). Then ``rollback`` and a byte-for-byte check that the
database is back to its original.

It leaves nothing running. With ``--mongo-uri`` it seeds nothing and works on
that database (take a copy first: the job rolls back at the end, but rehearse on a
restored dump, never on production).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

# Sandbox keys: obviously fake; the stub accepts exactly these.
ALREADY_DIRECT_KEY = "sk-sandbox-already-direct-0000"
SANDBOX_KEYS = {
    "DEEPSEEK_API_KEY": "sk-sandbox-deepseek-0000",
    "GEMINI_API_KEY": "sandbox-gemini-0000000000000000000000",
    "OLLAMA_API_KEY": "sandbox-ollama-0000000000000000000000",
    "OPENAI_API_KEY": "sk-sandbox-openai-0000",
}


@dataclass
class StepResult:
    title: str
    command: list[str]
    expected: tuple[int, ...]
    code: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.code in self.expected


class Job:
    def __init__(self, console: Console, workdir: Path, env: dict[str, str]) -> None:
        self.console = console
        self.workdir = workdir
        self.env = env
        self.results: list[StepResult] = []

    def run(self, title: str, *args: str, expect: tuple[int, ...] = (0,), why: str = "") -> int:
        cmd = ["layra-migrate", *args]
        self.console.print(Rule(f"[bold]{title}"))
        if why:
            self.console.print(f"[dim]{why}[/]")
        self.console.print(f"[bold cyan]$ {shlex.join(cmd)}[/]")
        sys.stdout.flush()
        t = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "layra_migrate", *args],
            cwd=self.workdir,
            env=self.env,
            check=False,
        )
        seconds = time.monotonic() - t
        result = StepResult(title, cmd, expect, proc.returncode, seconds)
        self.results.append(result)
        style = "green" if result.ok else "bold red"
        self.console.print(
            f"[{style}]exit {proc.returncode}[/] "
            f"(expected {' or '.join(map(str, expect))}, {seconds:.1f}s)"
        )
        return proc.returncode


def edit_plan_like_an_operator(plan_path: Path, stub_v1: str, console: Console) -> None:
    """What an operator does after reading the audit: pick one member of the
    load-balanced group, and route gpt-4o when no route serves it (with the sandbox config
    the openai/* wildcard does, through LiteLLM's provider inference)."""
    plan = yaml.safe_load(plan_path.read_text())
    models = plan.get("models", {})
    edits = []
    for name, entry in models.items():
        if entry.get("target") is None and entry.get("choices"):
            entry["target"] = entry["choices"][0]
            edits.append(f"{name}: chose {entry['target']['provider']} {entry['target']['model']}")
        elif name == "gpt-4o" and entry.get("target") is None:
            entry["target"] = {
                "provider": "openai",
                "base_url": stub_v1,
                "model": "gpt-4o",
                "api_key_env": "OPENAI_API_KEY",
            }
            edits.append("gpt-4o: routed to openai (the proxy never defined it)")
    header = "".join(
        line + "\n" for line in plan_path.read_text().splitlines() if line.startswith("#")
    )
    plan_path.write_text(header + yaml.safe_dump(plan, sort_keys=False))
    for e in edits:
        console.print(f"  plan edit: {e}")
    left = [n for n, e in models.items() if e.get("target") is None]
    if left:
        console.print(
            f"  left unresolved on purpose (no OpenAI-compatible chat endpoint): "
            f"{', '.join(left)}; rewrite runs with --skip-unresolved"
        )


def content_digest(mongo_uri: str, db_name: str) -> str:
    """sha256 over every application document, byte for byte (the engine's own fingerprint)."""
    import asyncio

    from pymongo import AsyncMongoClient

    from layra_migrate.engine.check import digest, fingerprint

    async def go() -> str:
        client: Any = AsyncMongoClient(mongo_uri)
        try:
            return digest(await fingerprint(client[db_name]))
        finally:
            await client.close()

    return asyncio.run(go())


def seed_layra_cache(redis_url: str, data: Any) -> int:
    """Cache some model configs the way Layra does (15-minute TTL), plus a key the
    tool must never touch, so the rewrite's cache clearing is visible."""
    import json

    import redis as redis_lib

    r = redis_lib.Redis.from_url(redis_url)
    n = 0
    for conv in data.conversations[::2]:
        r.set(
            f"conv_model_config:{conv['conversation_id']}",
            json.dumps({"model_url": conv["model_config"].get("model_url")}),
            ex=900,
        )
        n += 1
    for doc in data.model_config[::3]:
        r.set(f"model_config:{doc['username']}", "{}", ex=900)
        n += 1
    r.set("layra:unrelated", "must survive")
    r.close()
    return n


def docker_reachable() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


@dataclass
class DockerSandbox:
    """The fake LiteLLM stack the job decommissions and restores for real."""

    client: Any
    project: str
    run_id: str
    images: dict[str, str]
    leftovers: list[str] = field(default_factory=list)


def private_engine(console: Console, cleanup: ExitStack) -> tuple[str | None, str]:
    """No engine answers: start a private one as the tests do (root, dockerd and a static
    busybox needed); its socket, or None and the plain reason it was not started."""
    from layra_migrate.sandbox import private_engine as pe

    if os.environ.get("DOCKER_HOST"):
        return None, (
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer (a private "
            "engine is started only when DOCKER_HOST is not set)"
        )
    reason = pe.why_not()
    if reason:
        return None, f"no Docker engine runs here, and {reason}"
    console.print(
        "Docker: no engine runs here; starting a private dockerd (own socket and "
        "folders under /tmp, no bridge, no iptables), as the tests do..."
    )
    sys.stdout.flush()
    started = pe.start()
    if isinstance(started, str):
        return None, f"no Docker engine runs here, and a private dockerd did not start: {started}"
    cleanup.callback(pe.shutdown, started)
    console.print(
        f"Docker: private engine at {started.host} ({', '.join(started.notes)}); "
        "it is stopped at the end"
    )
    return started.host, ""


def start_docker_stack(
    console: Console, workdir: Path, cleanup: ExitStack, host: str | None = None
) -> DockerSandbox | None:
    """Build the sandbox images and start the fake stack on the reachable engine.

    The teardown (containers, volumes, network, images) is registered on ``cleanup``
    before anything is created, so it runs whatever happens next. None, with the
    reason printed, when the stack cannot be made here."""
    from layra_migrate import redact
    from layra_migrate.sandbox import docker_stack as ds

    busybox = ds.find_busybox()
    if not busybox:
        console.print(
            "Docker: reachable, but busybox is not installed (busybox-static: the "
            "fake LiteLLM stack's images are built from it); decommission and "
            "restore are skipped"
        )
        return None
    if not ds.is_static_elf(busybox):
        console.print(
            f"Docker: reachable, but {busybox} is not statically linked (install "
            "busybox-static); decommission and restore are skipped"
        )
        return None
    import docker

    client = (
        docker.DockerClient(base_url=host, timeout=60, version="auto")
        if host
        else docker.from_env(timeout=60)
    )
    cleanup.callback(client.close)
    try:
        engine_arch = str(client.info().get("Architecture") or "")
    except Exception:  # noqa: BLE001 - not fatal: the build below says what is wrong
        engine_arch = ""
    aliases = {"amd64": "x86_64", "arm64": "aarch64"}
    if engine_arch and aliases.get(engine_arch, engine_arch) != aliases.get(
        platform.machine().lower(), platform.machine().lower()
    ):
        console.print(
            f"Docker: the engine runs on {engine_arch}, this busybox is for "
            f"{platform.machine()}; decommission and restore are skipped"
        )
        return None
    run_id = uuid.uuid4().hex[:8]
    project = f"{ds.SANDBOX_PREFIX}{run_id}"
    sb = DockerSandbox(client, project, run_id, ds.image_refs(project))

    def teardown() -> None:
        try:
            sb.leftovers = ds.teardown(client, project, run_id, sb.images)
        except Exception as exc:  # noqa: BLE001 - report, never mask the job's own error
            sb.leftovers = [f"teardown failed: {redact.scrub(str(exc))}"]

    cleanup.callback(teardown)
    try:
        ds.build_images(client, sb.images, busybox)
        base = workdir / project
        base.mkdir(parents=True)
        ds.make_stack(client, base, images=sb.images, run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - the job goes on with the dry run
        console.print(
            f"[yellow]Docker: could not start the fake LiteLLM stack "
            f"({exc.__class__.__name__}: {escape(redact.scrub(str(exc))[:300])}); "
            "decommission and restore are skipped[/]"
        )
        cleanup.close()
        if sb.leftovers:
            console.print(f"[red]left on the Docker engine: {escape(', '.join(sb.leftovers))}[/]")
        return None
    console.print(
        f"Docker: fake LiteLLM stack, compose project {project} (proxy, database, "
        f"cache, their volumes and network; compose directory {base}/litellm-compose),"
        f" images {project}/* imported from busybox"
    )
    return sb


def run_docker_phase(
    job: Job, console: Console, sb: DockerSandbox, cleanup: ExitStack, workdir: Path
) -> None:
    """Phase 4 for real on the sandbox stack: the interlock, a forced decommission into
    an archive, restore from it; then the stack and its images are removed."""
    archive = "archive" if not (workdir / "archive").exists() else f"archive-{sb.run_id}"
    try:
        job.run(
            "Phase 4: decommission refuses while references remain",
            "decommission",
            "--project",
            sb.project,
            "--dry-run",
            expect=(4,),
            why="voyage-3 and claude-sonnet-4 were left on the proxy on purpose",
        )
        job.run(
            "Phase 4: decommission, for real (forced past the interlock)",
            "decommission",
            "--project",
            sb.project,
            "--archive-dir",
            archive,
            "--yes",
            "--force",
            "--reason",
            "sandbox: voyage-3 and claude-sonnet-4 are migrated separately",
            why="stops the proxy, dumps the database, archives volumes and the compose "
            "directory, verifies the archive",
        )
        job.run("restore: the stack back from its archive", "restore", archive, "--yes")
    finally:
        console.print(Rule("[bold]Docker clean-up"))
        cleanup.close()
    if sb.leftovers:
        console.print(f"[red]left on the Docker engine: {escape(', '.join(sb.leftovers))}[/]")
    else:
        console.print(
            f"removed the {sb.project} stack (containers, volumes, network) and its "
            "images: nothing of the sandbox is left on the Docker engine"
        )
    job.results.append(
        StepResult(
            "Docker: nothing of the sandbox stack left",
            ["(docker inspect)"],
            (0,),
            1 if sb.leftovers else 0,
            0.0,
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m layra_migrate.sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--users", type=int, default=12, help="users in the seeded data (default 12)")
    ap.add_argument(
        "--mongo-uri", help="use this MongoDB (e.g. a restored dump) instead of seeding"
    )
    ap.add_argument("--db", default="layra", help="database name (default layra)")
    ap.add_argument("--litellm-config", help="your LiteLLM config.yaml instead of the sandbox one")
    ap.add_argument("--workdir", help="keep plan and outputs here (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument(
        "--no-private-engine",
        action="store_true",
        help="without a running Docker engine, do not start a private dockerd "
        "(started otherwise when run as root with dockerd installed)",
    )
    args = ap.parse_args(argv)

    console = Console(highlight=False, soft_wrap=True)  # long lines whole, never cut
    from layra_migrate.sandbox.layra_data import build_dataset, seed_database
    from layra_migrate.sandbox.litellm_config import write_litellm_config
    from layra_migrate.sandbox.provider_stub import ProviderStub
    from layra_migrate.sandbox.servers import start_mongo, start_redis

    tmp = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="layra-sandbox-"))
    tmp.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        console.print(Rule("[bold]Sandbox"))
        stub = ProviderStub(
            valid_keys=frozenset([*SANDBOX_KEYS.values(), ALREADY_DIRECT_KEY]),
            behaviours={"deepseek-reasoner": "reasoning"},
        ).start()
        stack.callback(stub.stop)
        stub_root = stub.base_url.removesuffix("/v1")
        console.print(
            f"Providers: OpenAI-compatible stub at {stub.base_url} "
            "(stands in for DeepSeek, Gemini, Ollama Cloud, OpenAI)"
        )
        if args.mongo_uri:
            mongo_uri = args.mongo_uri
            console.print(f"MongoDB: {args.mongo_uri.split('@')[-1]} (your data, not seeded)")
        else:
            mongo = start_mongo(tmp / "mongo")
            stack.callback(mongo.stop)
            mongo_uri = mongo.uri
            from pymongo import MongoClient

            client: Any = MongoClient(mongo_uri)
            # Configurations that already bypassed the proxy point at the stub too,
            # so verify of the database can pass on a machine without internet.
            data = build_dataset(
                users=args.users,
                seed=2026,
                direct_urls=[stub.base_url, stub_root + "/v1/"],
                direct_keys=[ALREADY_DIRECT_KEY],
            )
            seed_database(client[args.db], data)
            client.close()
            exp = data.expected
            console.print(
                f"MongoDB: SecantusDB on 127.0.0.1:{mongo.port}, database {args.db!r}, "
                f"{args.users} users, {sum(exp.references.values())} model "
                f"configurations ({exp.proxied_total()} via the proxy) in 4 places"
            )
        redis = start_redis(tmp / "redis")
        if redis:
            stack.callback(redis.stop)
            cached = 0 if args.mongo_uri else seed_layra_cache(redis.uri, data)
            console.print(
                f"Redis: redis-server on 127.0.0.1:{redis.port}, {cached} model configs "
                "cached the way Layra caches them"
            )
        else:
            console.print("Redis: redis-server not installed; cache clearing is skipped")
        docker_cleanup = stack.enter_context(ExitStack())
        docker_sb: DockerSandbox | None = None
        docker_host: str | None = None
        why_no_docker = ""
        reachable = docker_reachable()
        if not reachable and not args.no_private_engine:
            # Registered on the outer stack: the engine outlives the stack's own clean-up.
            docker_host, why_no_docker = private_engine(console, stack)
            reachable = docker_host is not None
        elif not reachable:
            why_no_docker = "no Docker engine answers, and --no-private-engine was given"
        if reachable:
            docker_sb = start_docker_stack(console, tmp, docker_cleanup, docker_host)
        else:
            console.print(
                f"[yellow]Docker: {escape(why_no_docker)}; decommission and restore "
                "are skipped (the step below shows what the tool says without an "
                "engine)[/]"
            )
        config = (
            Path(args.litellm_config)
            if args.litellm_config
            else write_litellm_config(tmp / "litellm", provider_base=stub_root)
        )
        console.print(f"LiteLLM config: {config}")
        console.print(f"Work folder: {tmp}")

        env = {k: v for k, v in os.environ.items() if not k.startswith("LAYRA_MIGRATE_")}
        env.update(SANDBOX_KEYS)
        env.update(
            {
                "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
                "LAYRA_MIGRATE_DB": args.db,
                "LAYRA_MIGRATE_LITELLM_CONFIG": str(config),
            }
        )
        if redis:
            env["LAYRA_MIGRATE_REDIS_URL"] = redis.uri
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        job = Job(console, tmp, env)
        plan = "plan.yaml"
        before = content_digest(mongo_uri, args.db)
        console.print(f"Content hash of the application collections: {before[:16]}...")

        job.run("Phase 1: audit (read-only)", "audit", "--plan-out", plan)
        console.print(Rule("[bold]Review the plan"))
        edit_plan_like_an_operator(tmp / plan, stub.base_url, console)
        # Rehearsing on your own data: its providers are real, so a failed probe is a
        # finding to read (exit 5), not a failure of the rehearsal.
        rehearsal = bool(args.mongo_uri or args.litellm_config)
        verify_ok = (0, 5) if rehearsal else (0,)
        job.run(
            "Phase 3 first: verify the plan's targets before touching data",
            "verify",
            "--plan",
            plan,
            "--allow-skipped",
            expect=verify_ok,
            why="names left unresolved are skipped; --allow-skipped accepts that",
        )
        job.run(
            "Phase 2: rewrite, dry run (writes nothing)",
            "rewrite",
            "--plan",
            plan,
            "--dry-run",
            "--skip-unresolved",
        )
        job.run("Phase 2: rewrite", "rewrite", "--plan", plan, "--skip-unresolved", "--yes")
        job.run(
            "Phase 2: a second rewrite is a no-op",
            "rewrite",
            "--plan",
            plan,
            "--skip-unresolved",
            "--yes",
        )
        job.run(
            "Phase 3: verify what the database now holds",
            "verify",
            "--allow-skipped",
            expect=verify_ok,
        )
        job.run("status", "status")
        job.run("check: reversibility proof on a scratch copy", "check", "--plan", plan)
        job.run("audit again: what still points at the proxy", "audit")
        if docker_sb is not None:
            run_docker_phase(job, console, docker_sb, docker_cleanup, tmp)
        elif reachable:
            # An engine answers, but the fake stack could not be made on it (said above):
            # the dry run looks for a stack that is not there.
            job.run(
                "Phase 4: decommission, dry run (no sandbox stack on this engine)",
                "decommission",
                "--dry-run",
                expect=(4,),
                why="no LiteLLM stack to find: the tool refuses (exit 4)",
            )
            console.print(Rule("[bold]Phase 4: decommission"))
            console.print(
                "[yellow]no sandbox stack could be started on the Docker engine (see "
                "Sandbox above): decommission and restore were skipped; no stack was "
                "stopped.[/]"
            )
        else:
            job.run(
                "Phase 4: decommission without a Docker engine: exit 3 (unreachable)",
                "decommission",
                "--dry-run",
                expect=(3,),
                why=why_no_docker,
            )
            console.print(Rule("[bold]Phase 4: decommission"))
            console.print(
                f"[yellow]Docker is not reachable here ({escape(why_no_docker)}): "
                "decommission and restore were skipped; no stack was stopped.[/]"
            )
        job.run("rollback: back to the exact original", "rollback", "--yes")
        after = content_digest(mongo_uri, args.db)
        console.print(Rule("[bold]Exactness"))
        same = after == before
        console.print(
            f"content hash before the job:  {before[:16]}...\n"
            f"content hash after rollback: {after[:16]}...  "
            + ("[green]identical: every byte restored[/]" if same else "[red]DIFFERENT[/]")
        )
        job.results.append(
            StepResult(
                "rollback restored the exact original",
                ["(content hash)"],
                (0,),
                0 if same else 1,
                0.0,
            )
        )

        console.print(Rule("[bold]Summary"))
        table = Table()
        table.add_column("step")
        table.add_column("exit", justify="right")
        table.add_column("result")
        for r in job.results:
            table.add_row(
                r.title, str(r.code), "[green]as expected[/]" if r.ok else "[red]UNEXPECTED[/]"
            )
        console.print(table)
        failed = [r for r in job.results if not r.ok]
        if not args.keep and not args.workdir:
            stack.callback(shutil.rmtree, tmp, True)
        if failed:
            console.print(f"[bold red]{len(failed)} step(s) did not end as expected[/]")
            return 1
        console.print(
            "[bold green]All four phases ran against the sandbox; nothing is left running.[/]"
        )
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
