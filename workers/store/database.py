"""One small SQL connection for the worker's state: SQLite or PostgreSQL, the same statements.

The stores (sync history, parked events, the deletion guard) write `?` placeholders and
portable SQL; this module runs it on SQLite (standard library, in a worker thread so the event
loop never waits on the disk, WAL so `orgstream history` never blocks the worker) or on
PostgreSQL (psycopg 3, async, `?` turned into `%s`). Each store hands over its DDL, run once on
first use; `{id}` in it becomes the dialect's auto-increment key.

Replicas start together, so the DDL runs under a lock: PostgreSQL's `CREATE TABLE IF NOT EXISTS`
is not safe against a concurrent one (it fails on the catalogue's unique index), and SQLite
would otherwise interleave two processes' schema changes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import psycopg

from schemas.config import ConfigError
from workers.store.migrations import TextColumn, postgres_statements, sqlite_migrate

Row = tuple[Any, ...]
Statement = tuple[str, Sequence[Any]]
# One advisory lock key for every orgstream schema change in a PostgreSQL database.
_SCHEMA_LOCK: Final = 0x6F7267737472  # "orgstr"


class Database(Protocol):
    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; its rows (none for writes)."""
        ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def transact(self, statements: Sequence[Statement]) -> None:
        """Run the statements as one transaction: all of them, or none."""
        ...

    async def aclose(self) -> None: ...


def open_database(
    url: str, schema: Sequence[str], migrations: Sequence[TextColumn] = ()
) -> Database:
    """A store with `schema` made (and `migrations` of an older store's columns done)."""
    if url.startswith("sqlite:///"):
        return SqliteDatabase(Path(url.removeprefix("sqlite:///")), schema, migrations)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, [*schema, *postgres_statements(migrations)])
    raise ConfigError(
        f"store.url: unsupported store {url.partition(':')[0]!r} "
        "(use sqlite:///path or postgresql://…)"
    )


class SqliteDatabase:
    def __init__(
        self, path: Path, schema: Sequence[str], migrations: Sequence[TextColumn] = ()
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")  # a second process (the CLI) may write too
        # LIKE as PostgreSQL has it: a case-exact attribute's `sw` must not ignore case.
        self._db.execute("PRAGMA case_sensitive_like=ON")
        self._db.execute("BEGIN EXCLUSIVE")

        def create() -> None:
            for statement in schema:
                self._db.execute(statement.format(id="INTEGER PRIMARY KEY AUTOINCREMENT"))

        try:
            sqlite_migrate(self._db, migrations, create)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._lock = threading.Lock()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await asyncio.to_thread(self._fetch, sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await asyncio.to_thread(self._execute, sql, params)

    async def transact(self, statements: Sequence[Statement]) -> None:
        await asyncio.to_thread(self._transact, statements)

    async def aclose(self) -> None:
        self._db.close()

    def _transact(self, statements: Sequence[Statement]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _execute(self, sql: str, params: Sequence[Any]) -> int:
        with self._lock:
            return self._db.execute(sql, params).rowcount


class PostgresDatabase:
    """One connection, used by one task at a time (the rows are small and few)."""

    def __init__(self, url: str, schema: Sequence[str]) -> None:
        self._url = url
        self._schema = schema
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._lock:
            cursor = await (await self._connected()).execute(_pyformat(sql), params)
            return await cursor.fetchall() if cursor.description else []

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._lock:
            cursor = await (await self._connected()).execute(_pyformat(sql), params)
            return cursor.rowcount

    async def transact(self, statements: Sequence[Statement]) -> None:
        async with self._lock:
            connection = await self._connected()
            async with connection.transaction():
                for sql, params in statements:
                    await connection.execute(_pyformat(sql), params)

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _connected(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            try:
                self._connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            except psycopg.OperationalError as exc:
                # libpq's message names host and port, never the password.
                raise ConfigError(f"store.url: cannot connect: {exc}") from exc
            async with self._connection.transaction():
                # Held until the transaction ends: other replicas wait, then find the tables.
                await self._connection.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
                for statement in self._schema:
                    await self._connection.execute(
                        statement.format(id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
                    )
        return self._connection


def _pyformat(sql: str) -> str:
    # The stores' SQL has no literal question marks or percent signs, only placeholders.
    return sql.replace("?", "%s")
