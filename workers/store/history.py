"""The sync history: one row per event outcome, with what was done and what went wrong.

Two stores behind one interface: SQLite (the default, `store.url = "sqlite:///orgstream.db"`,
standard library, in a worker thread so the event loop never waits on the disk) and
PostgreSQL (`store.url = "postgresql://…"`, psycopg 3, async). Both keep `recorded_at` as
RFC 3339 UTC text, which sorts in time order, so one query serves both. Rows older than
`store.retention_days` are pruned by the worker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol

import orjson

from schemas.event import ContactEvent, utc_iso
from workers.store.database import Database, open_database

# `parked` and `held` are interim: the same event gets another row when it is re-driven.
# `refused`: a write an IdP asked for that the vendor (or orgstream's mapping) refused.
Outcome = Literal["applied", "skipped", "parked", "held", "dead_lettered", "refused"]
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "applied",
    "skipped",
    "parked",
    "held",
    "dead_lettered",
    "refused",
)

HISTORY_COLUMNS: Final = (
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
HISTORY_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS sync_history (
    id {id},
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
)""",
    "CREATE INDEX IF NOT EXISTS sync_history_time ON sync_history (recorded_at)",
    "CREATE INDEX IF NOT EXISTS sync_history_tenant_time ON sync_history (tenant, recorded_at)",
    "CREATE INDEX IF NOT EXISTS sync_history_entity ON sync_history (entity_id)",
    # The console's filters, newest first (workers/store/history_pages.py).
    "CREATE INDEX IF NOT EXISTS sync_history_outcome_time ON sync_history (outcome, recorded_at)",
    "CREATE INDEX IF NOT EXISTS sync_history_tenant_outcome_time"
    " ON sync_history (tenant, outcome, recorded_at)",
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
    error: str | None = None  # what went wrong; for skipped, parked and held: why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(
        cls,
        event: ContactEvent,
        outcome: Outcome,
        origin: str,
        runs: int,
        seconds: float,
        retries: Sequence[str] = (),
        operations: Sequence[str] = (),
        error: str | None = None,
    ) -> HistoryEntry:
        """The row for one event's outcome, recorded now."""
        return cls(
            recorded_at=utc_iso(time.time()),
            tenant=event.tenant,
            vendor=event.vendor,
            entity=event.entity,
            entity_id=event.entity_id,
            change=event.change,
            event_id=event.event_id,
            outcome=outcome,
            attempts=runs,
            origin=origin,
            duration_ms=round(seconds * 1000, 3),
            retries=list(retries),
            operations=list(operations),
            error=error,
        )


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
    return SqlHistory(open_database(url, HISTORY_SCHEMA))


class SqlHistory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, entry: HistoryEntry) -> None:
        await self._db.execute(_INSERT, _row(entry))

    async def query(self, query: HistoryQuery) -> list[HistoryEntry]:
        sql, params = _select_sql(query)
        return [entry_of(row) for row in await self._db.fetch(sql, params)]

    async def prune(self, before: datetime) -> int:
        return await self._db.execute(
            "DELETE FROM sync_history WHERE recorded_at < ?", [_text_time(before)]
        )

    async def aclose(self) -> None:
        await self._db.aclose()


_INSERT: Final = (
    f"INSERT INTO sync_history ({', '.join(HISTORY_COLUMNS)}) "  # noqa: S608 - fixed names
    f"VALUES ({', '.join('?' for _ in HISTORY_COLUMNS)})"
)


def _select_sql(query: HistoryQuery) -> tuple[str, list[Any]]:
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
        params.append(_text_time(query.since))
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = (
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM sync_history {where} "  # noqa: S608 - fixed names
        f"ORDER BY recorded_at DESC, id DESC LIMIT ?"
    )
    return sql, [*params, query.limit]


def _text_time(moment: datetime) -> str:
    return utc_iso(moment.timestamp())  # the same text form as recorded_at


def _row(entry: HistoryEntry) -> list[Any]:
    values = entry.to_dict()
    return [
        orjson.dumps(values[c]).decode() if c in _JSON_COLUMNS else values[c]
        for c in HISTORY_COLUMNS
    ]


def entry_of(row: Sequence[Any]) -> HistoryEntry:
    values = dict(zip(HISTORY_COLUMNS, row, strict=True))
    for column in _JSON_COLUMNS:
        values[column] = orjson.loads(values[column])
    return HistoryEntry(**values)
