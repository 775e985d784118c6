"""The sync history: one row per event outcome, with what was done and what went wrong.

Two stores behind one interface: SQLite (the default, `store.url = "sqlite:///orgstream.db"`,
standard library, in a worker thread so the event loop never waits on the disk) and
PostgreSQL (`store.url = "postgresql://…"`, psycopg 3, async). Both keep `recorded_at` as
RFC 3339 UTC text, which sorts in time order, so one query serves both. Rows older than
`store.retention_days` are pruned by the worker.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import orjson
import psycopg

from schemas.config import ConfigError
from schemas.event import utc_iso

Outcome = Literal["applied", "skipped", "dead_lettered"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("applied", "skipped", "dead_lettered")

_COLUMNS: Final = (
    "recorded_at",
    "tenant",
    "vendor",
    "entity",
    "entity_id",
    "change",
    "event_id",
    "outcome",
    "attempts",
    "retries",
    "operations",
    "error",
    "duration_ms",
    "origin",
)
_JSON_COLUMNS: Final = frozenset({"retries", "operations"})
_TABLE: Final = """
CREATE TABLE IF NOT EXISTS sync_history (
    id {id_column},
    recorded_at TEXT NOT NULL,
    tenant TEXT NOT NULL,
    vendor TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    change TEXT NOT NULL,
    event_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    retries TEXT NOT NULL,
    operations TEXT NOT NULL,
    error TEXT,
    duration_ms DOUBLE PRECISION NOT NULL,
    origin TEXT NOT NULL
)"""
_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS sync_history_time ON sync_history (recorded_at)",
    "CREATE INDEX IF NOT EXISTS sync_history_tenant_time ON sync_history (tenant, recorded_at)",
    "CREATE INDEX IF NOT EXISTS sync_history_entity ON sync_history (entity_id)",
)


@dataclass(frozen=True)
class HistoryEntry:
    recorded_at: str  # RFC 3339 UTC
    tenant: str
    vendor: str
    entity: str
    entity_id: str
    change: str
    event_id: str
    outcome: Outcome
    attempts: int  # times the apply ran: 1 unless the consumer retried it
    origin: str  # topic/partition/offset
    duration_ms: float
    retries: list[str] = field(default_factory=list)  # every retried step, in order
    operations: list[str] = field(default_factory=list)  # the SCIM writes done
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HistoryQuery:
    tenant: str | None = None
    entity_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    limit: int = 100


class HistoryStore(Protocol):
    async def record(self, entry: HistoryEntry) -> None: ...

    async def query(self, query: HistoryQuery) -> list[HistoryEntry]: ...

    async def prune(self, before: datetime) -> int:
        """Delete entries recorded before `before`; return how many."""
        ...

    async def aclose(self) -> None: ...


def open_history(url: str) -> HistoryStore:
    if url.startswith("sqlite:///"):
        return SqliteHistory(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresHistory(url)
    raise ConfigError(
        f"store.url: unsupported store {url.partition(':')[0]!r} "
        "(use sqlite:///path or postgresql://…)"
    )


class SqliteHistory:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # readers (`orgstream history`) never block
        self._db.execute(_TABLE.format(id_column="INTEGER PRIMARY KEY AUTOINCREMENT"))
        for statement in _INDEXES:
            self._db.execute(statement)
        self._lock = threading.Lock()

    async def record(self, entry: HistoryEntry) -> None:
        await asyncio.to_thread(self._run, _insert_sql("?"), _row(entry))

    async def query(self, query: HistoryQuery) -> list[HistoryEntry]:
        sql, params = _select_sql(query, "?")
        rows = await asyncio.to_thread(self._run, sql, params)
        return [_entry(row) for row in rows]

    async def prune(self, before: datetime) -> int:
        return await asyncio.to_thread(self._delete_before, _text_time(before))

    async def aclose(self) -> None:
        self._db.close()

    def _run(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _delete_before(self, moment: str) -> int:
        with self._lock:
            return self._db.execute(
                "DELETE FROM sync_history WHERE recorded_at < ?", [moment]
            ).rowcount


class PostgresHistory:
    """One connection, used by one task at a time (history rows are small and few)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def record(self, entry: HistoryEntry) -> None:
        await self._run(_insert_sql("%s"), _row(entry))

    async def query(self, query: HistoryQuery) -> list[HistoryEntry]:
        sql, params = _select_sql(query, "%s")
        return [_entry(row) for row in await self._run(sql, params)]

    async def prune(self, before: datetime) -> int:
        async with self._lock:
            connection = await self._connected()
            cursor = await connection.execute(
                "DELETE FROM sync_history WHERE recorded_at < %s", [_text_time(before)]
            )
            return cursor.rowcount

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _run(self, sql: str, params: Sequence[Any]) -> list[Any]:
        async with self._lock:
            connection = await self._connected()
            cursor = await connection.execute(sql, params)
            return await cursor.fetchall() if cursor.description else []

    async def _connected(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            try:
                self._connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            except psycopg.OperationalError as exc:
                # libpq's message names host and port, never the password.
                raise ConfigError(f"store.url: cannot connect: {exc}") from exc
            await self._connection.execute(
                _TABLE.format(id_column="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
            )
            for statement in _INDEXES:
                await self._connection.execute(statement)
        return self._connection


def _insert_sql(placeholder: str) -> str:
    values = ", ".join(placeholder for _ in _COLUMNS)
    return f"INSERT INTO sync_history ({', '.join(_COLUMNS)}) VALUES ({values})"  # noqa: S608 - fixed names


def _select_sql(query: HistoryQuery, placeholder: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("tenant", query.tenant),
        ("entity_id", query.entity_id),
        ("outcome", query.outcome),
    ):
        if value is not None:
            clauses.append(f"{column} = {placeholder}")
            params.append(value)
    if query.since is not None:
        clauses.append(f"recorded_at >= {placeholder}")
        params.append(_text_time(query.since))
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = (
        f"SELECT {', '.join(_COLUMNS)} FROM sync_history {where} "  # noqa: S608 - fixed names
        f"ORDER BY recorded_at DESC, id DESC LIMIT {placeholder}"
    )
    return sql, [*params, query.limit]


def _text_time(moment: datetime) -> str:
    return utc_iso(moment.timestamp())  # the same text form as recorded_at


def _row(entry: HistoryEntry) -> list[Any]:
    values = entry.to_dict()
    return [orjson.dumps(values[c]).decode() if c in _JSON_COLUMNS else values[c] for c in _COLUMNS]


def _entry(row: Sequence[Any]) -> HistoryEntry:
    values = dict(zip(_COLUMNS, row, strict=True))
    for column in _JSON_COLUMNS:
        values[column] = orjson.loads(values[column])
    return HistoryEntry(**values)
