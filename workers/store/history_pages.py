"""The sync history as the console pages it: filtered, newest first, a page at a time by
keyset (`recorded_at`, `id`) so the thousandth page costs what the first does, one row with
the other rows about the same entity, and each tenant's latest row. Every query is served by an
index of `sync_history` (workers/store/history.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from workers.store.database import Database, open_database
from workers.store.history import HISTORY_COLUMNS, HISTORY_SCHEMA, HistoryEntry, entry_of

_SELECT: Final = f"SELECT id, {', '.join(HISTORY_COLUMNS)} FROM sync_history"  # noqa: S608 - fixed names
_FILTERS: Final = ("tenant", "entity", "entity_id", "outcome")


@dataclass(frozen=True)
class HistoryFilter:
    tenant: str | None = None
    entity: str | None = None  # "user" or "department"
    entity_id: str | None = None
    outcome: str | None = None
    since: str | None = None  # RFC 3339 UTC text, as recorded_at
    until: str | None = None


@dataclass(frozen=True)
class HistoryRow:
    id: int
    entry: HistoryEntry

    @property
    def cursor(self) -> str:
        """Where the next page starts: after this row."""
        return f"{self.entry.recorded_at}|{self.id}"


class HistoryPages:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(
        self, chosen: HistoryFilter, after: str | None = None, size: int = 50
    ) -> list[HistoryRow]:
        """Up to `size` rows, newest first, older than the cursor `after` (a row's `cursor`)."""
        clauses, params = _where(chosen)
        if after:
            recorded_at, _, row_id = after.rpartition("|")
            clauses.append("(recorded_at < ? OR (recorded_at = ? AND id < ?))")
            params += [recorded_at, recorded_at, int(row_id) if row_id.isdecimal() else 0]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._db.fetch(
            f"{_SELECT} {where} ORDER BY recorded_at DESC, id DESC LIMIT ?", [*params, size]
        )
        return [_row(r) for r in rows]

    async def one(self, row_id: int) -> HistoryRow | None:
        rows = await self._db.fetch(f"{_SELECT} WHERE id = ?", [row_id])
        return _row(rows[0]) if rows else None

    async def timeline(self, tenant: str, entity_id: str, limit: int = 100) -> list[HistoryRow]:
        """Every row about one entity of a tenant, oldest first (the latest `limit`)."""
        rows = await self._db.fetch(
            f"{_SELECT} WHERE entity_id = ? AND tenant = ? ORDER BY recorded_at DESC, id DESC "
            "LIMIT ?",
            [entity_id, tenant, limit],
        )
        return [_row(r) for r in reversed(rows)]

    async def latest(self, tenant: str) -> HistoryRow | None:
        rows = await self._db.fetch(
            f"{_SELECT} WHERE tenant = ? ORDER BY recorded_at DESC, id DESC LIMIT 1", [tenant]
        )
        return _row(rows[0]) if rows else None

    async def durations(self, tenant: str, since: str, most: int = 10_000) -> list[float]:
        """How long each apply since `since` took, in milliseconds (the latest `most`)."""
        rows = await self._db.fetch(
            "SELECT duration_ms FROM sync_history WHERE tenant = ? AND recorded_at >= ?"
            " ORDER BY recorded_at DESC LIMIT ?",
            [tenant, since, most],
        )
        return [float(r[0]) for r in rows]

    async def count_since(self, since: str) -> int:
        """Rows recorded at or after `since` (an index range on recorded_at)."""
        rows = await self._db.fetch(
            "SELECT count(*) FROM sync_history WHERE recorded_at >= ?", [since]
        )
        return int(rows[0][0])

    async def aclose(self) -> None:
        await self._db.aclose()


def open_history_pages(url: str) -> HistoryPages:
    return HistoryPages(open_database(url, HISTORY_SCHEMA))


def _where(chosen: HistoryFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in _FILTERS:
        value = getattr(chosen, column)
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if chosen.since:
        clauses.append("recorded_at >= ?")
        params.append(chosen.since)
    if chosen.until:
        clauses.append("recorded_at < ?")
        params.append(chosen.until)
    return clauses, params


def _row(row: Sequence[Any]) -> HistoryRow:
    return HistoryRow(int(row[0]), entry_of(row[1:]))
