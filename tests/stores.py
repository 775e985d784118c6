"""History stores for tests: a schema of its own in the PostgreSQL every development and CI
machine runs at 127.0.0.1:5432 (trust auth), dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg

# Override with ORGSTREAM_TEST_POSTGRES where the server differs.
POSTGRES = os.environ.get(
    "ORGSTREAM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.asynccontextmanager
async def postgres_store_url() -> AsyncIterator[str]:
    """A `store.url` whose tables land in a fresh schema."""
    schema = f"orgstream_test_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(POSTGRES, autocommit=True) as admin:
        await admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")


@contextlib.asynccontextmanager
async def store_url(kind: str, directory: Path) -> AsyncIterator[str]:
    """A fresh `store.url` of this kind: "sqlite" (a file in `directory`) or "postgresql"."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'state.db'}"
        return
    async with postgres_store_url() as url:
        yield url
