"""Settings precedence (flag > env > env file > default) and secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layra_migrate import redact
from layra_migrate.errors import ConfigError
from layra_migrate.settings import load_settings
from tests.conftest import assert_no_canary, run_cli


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LAYRA_MIGRATE_DB=from_file\nMONGODB_DB=layra\n")
    s = load_settings(env_file=env_file, environ={})
    assert (s.db.value, s.db.source.split()[0]) == ("from_file", "env-file")
    s = load_settings(env_file=env_file, environ={"LAYRA_MIGRATE_DB": "from_env"})
    assert (s.db.value, s.db.source) == ("from_env", "env LAYRA_MIGRATE_DB")
    s = load_settings(db="from_flag", env_file=env_file, environ={"LAYRA_MIGRATE_DB": "x"})
    assert (s.db.value, s.db.source) == ("from_flag", "flag")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    s = load_settings(environ={}, env_file=empty)
    assert (s.db.value, s.db.source) == ("chat_mongodb", "default")
    assert s.mongo_uri.value == "mongodb://localhost:27017"


def test_layra_env_names_build_an_escaped_admin_uri(tmp_path: Path) -> None:
    env_file = tmp_path / "layra.env"
    env_file.write_text(
        "MONGODB_URL=mongodb:27017\nMONGODB_ROOT_USERNAME=root@x\n"
        "MONGODB_ROOT_PASSWORD=p@ss:w/rd CANARYpass\nMONGODB_DB=layra\n"
    )
    s = load_settings(env_file=env_file, environ={})
    assert s.mongo_uri.value == (
        "mongodb://root%40x:p%40ss%3Aw%2Frd+CANARYpass@mongodb:27017/?authSource=admin"
    )
    assert s.db.value == "layra"
    shown = " ".join(v for _n, v, _s in s.describe())
    assert "CANARYpass" not in shown and "****" in shown
    # the env file never overrides a variable already set
    s = load_settings(env_file=env_file, environ={"MONGODB_DB": "chat_mongodb"})
    assert s.db.value == "chat_mongodb"


def test_explicit_env_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="env file not found"):
        load_settings(env_file=tmp_path / "missing.env", environ={})
    r = run_cli("audit", "--env-file", str(tmp_path / "missing.env"), cwd=tmp_path)
    assert r.code == 2 and "missing.env" in r.stderr


def test_verbose_shows_sources_masked(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "MONGODB_URL=127.0.0.1:1\nMONGODB_ROOT_USERNAME=root\nMONGODB_ROOT_PASSWORD=CANARYpassword9\n"
    )
    r = run_cli("audit", "-v", "--timeout", "1", cwd=tmp_path)
    assert r.code == 3
    assert "mongo-uri" in r.stderr and "env-file" in r.stderr
    assert_no_canary(r.stdout, r.stderr)


def test_mask_secret_keeps_at_most_four_characters() -> None:
    assert redact.mask_secret("sk-abcdefghijklmnopqrstuvwxyz1234") == "sk-...1234"
    assert redact.mask_secret("short") == "****"
    assert redact.mask_secret(None) is None and redact.mask_secret("") == ""
    assert (
        redact.mask_url("mongodb://u:secretpw@h:27017/?authSource=admin")
        == "mongodb://u:****@h:27017/?authSource=admin"
    )
    assert "abc123secret" not in redact.mask_url("https://h/x?api_key=abc123secret")


@given(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=12, max_size=60)
)
def test_registered_secrets_never_survive_scrub(secret: str) -> None:
    redact.register_secret(secret)
    text = f"error talking to provider: header Authorization: Bearer {secret} rejected"
    out = redact.scrub(text)
    assert secret not in out
    assert redact.mask_secret(secret) is not None


def test_scrub_masks_unregistered_key_shapes_and_url_passwords() -> None:
    text = (
        "key sk-proj-ABCDEFGHIJKLMNOPQRS012345 and "
        "mongodb://admin:hunter2hunter2@db:27017 and AIzaSyA1234567890abcdefFAKE"
    )
    out = redact.scrub(text)
    assert "ABCDEFGHIJKLMNOP" not in out and "hunter2" not in out and "AIzaSyA12345" not in out
