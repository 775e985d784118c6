"""The sync history: one row per event outcome, with what was done and what went wrong.

SQLite (the default, `store.url = "sqlite:///orgstream.db"`) through the standard library, in a
worker thread so the event loop never waits on the disk. PostgreSQL comes with issue 4; a
`postgresql://` URL is refused at start-up with a clear message until then.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from schemas.config import ConfigError
from schemas.event import utc_iso

Outcome = Literal["applied", "skipped", "dead_lettered"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("applied", "skipped", "dead_lettered")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sync_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    duration_ms REAL NOT NULL,
    origin TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sync_history_tenant_time ON sync_history (tenant, recorded_at);
CREATE INDEX IF NOT EXISTS sync_history_entity ON sync_history (entity_id);
"""
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


class SqliteHistory:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # readers (`orgstream history`) never block
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    async def record(self, entry: HistoryEntry) -> None:
        await asyncio.to_thread(self._insert, entry)

    async def query(self, query: HistoryQuery) -> list[HistoryEntry]:
        return await asyncio.to_thread(self._select, query)

    def close(self) -> None:
        self._db.close()

    def _insert(self, entry: HistoryEntry) -> None:
        values = entry.to_dict()
        row = [
            orjson.dumps(values[c]).decode() if c in ("retries", "operations") else values[c]
            for c in _COLUMNS
        ]
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._lock:
            self._db.execute(
                f"INSERT INTO sync_history ({', '.join(_COLUMNS)}) VALUES ({placeholders})",  # noqa: S608 - fixed column names
                row,
            )

    def _select(self, query: HistoryQuery) -> list[HistoryEntry]:
        where, params = _where(query)
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM sync_history {where} "  # noqa: S608 - fixed names
            "ORDER BY recorded_at DESC, id DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, [*params, query.limit]).fetchall()
        return [_entry(row) for row in rows]


def open_history(url: str) -> SqliteHistory:
    if url.startswith("sqlite:///"):
        return SqliteHistory(Path(url.removeprefix("sqlite:///")))
    raise ConfigError(f"store.url: unsupported store {url.partition(':')[0]!r} (use sqlite:///…)")


def _where(query: HistoryQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("tenant", query.tenant),
        ("entity_id", query.entity_id),
        ("outcome", query.outcome),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        clauses.append("recorded_at >= ?")
        params.append(utc_iso(query.since.timestamp()))  # the same text form as recorded_at
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _entry(row: Sequence[Any]) -> HistoryEntry:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["retries"] = orjson.loads(values["retries"])
    values["operations"] = orjson.loads(values["operations"])
    return HistoryEntry(**values)
