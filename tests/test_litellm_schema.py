"""The LiteLLM tables of the test stack (sandbox/litellm_db.py) against LiteLLM's own
Prisma schema: ``litellm/proxy/schema.prisma`` of the pinned test-only litellm 1.110.2
(the ``oracle`` extra, or ``pip install --no-deps litellm==1.110.2``; its file is
read, the package is never imported). Every scalar field of the four models must be a
column with the same name, type, optionality and presence of a default, in the same
order.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from layra_migrate.sandbox import litellm_db as ldb

PINNED = "1.110.2"
SCALARS = {"String", "Float", "Int", "BigInt", "Boolean", "DateTime", "Json", "Decimal", "Bytes"}


def _schema() -> str:
    try:
        dist = importlib.metadata.distribution("litellm")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            f"litellm {PINNED} is not installed (pip install --no-deps "
            f"litellm=={PINNED}): LiteLLM's schema.prisma is the oracle"
        )
    if dist.version != PINNED:
        pytest.skip(f"litellm {dist.version} installed; the oracle is {PINNED}")
    path = Path(str(dist.locate_file("litellm/proxy/schema.prisma")))
    return path.read_text(encoding="utf-8")


def prisma_models(text: str) -> dict[str, list[ldb.Column]]:
    """Scalar fields per model: (name, type, optional, has @default)."""
    models: dict[str, list[ldb.Column]] = {}
    for m in re.finditer(r"^model\s+(\w+)\s*\{(.*?)^\}", text, re.S | re.M):
        cols: list[ldb.Column] = []
        for raw in m.group(2).splitlines():
            line = raw.split("//", 1)[0].strip()
            if not line or line.startswith("@@"):
                continue
            parts = line.split()
            if len(parts) < 2:
                continue
            name, typ = parts[0], parts[1]
            base = typ.rstrip("?").removesuffix("[]")
            if base not in SCALARS:
                continue  # a relation field, not a column
            optional = typ.endswith("?")
            shown = base + ("[]" if typ.endswith("[]") else "")
            cols.append((name, shown, optional, "@default" in line))
        models[m.group(1)] = cols
    return models


def test_prisma_parser_reads_a_known_shape() -> None:
    text = (
        "model T {\n  id String @id\n  n Int? // note\n  u U @relation(fields: [id])\n"
        "  tags String[] @default([])\n  @@index([n])\n}\n"
    )
    assert prisma_models(text) == {
        "T": [
            ("id", "String", False, False),
            ("n", "Int", True, False),
            ("tags", "String[]", False, True),
        ]
    }


@pytest.mark.parametrize("table", list(ldb.TABLES))
def test_tables_match_litellms_schema(table: str) -> None:
    models = prisma_models(_schema())
    assert table in models, f"{table} is not a model of LiteLLM {PINNED}"
    assert ldb.TABLES[table] == models[table]


def test_ddl_quotes_every_identifier_and_keys_each_table() -> None:
    ddl = ldb.ddl()
    for table, cols in ldb.TABLES.items():
        assert f'CREATE TABLE "{table}" (' in ddl
        assert f'CONSTRAINT "{table}_pkey" PRIMARY KEY ("{ldb.PRIMARY_KEYS[table]}")' in ddl
        for col, *_ in cols:
            assert f'"{col}" ' in ddl
    assert '"startTime" TIMESTAMP(3) NOT NULL' in ddl
    assert '"litellm_params" JSONB NOT NULL' in ddl
