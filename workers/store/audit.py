"""The console's audit trail: every operator action (a re-drive, an approval, a sync started)
with who did it, when, on what, and how it ended. Rows are only ever added."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from schemas.event import utc_iso
from workers.store.database import Database, open_database

AUDIT_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS console_audit (
    id {id},
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL
)""",
)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str  # RFC 3339 UTC
    who: str
    action: str  # "redrive", "approve-deletions", "sync", "dry-run"
    target: str  # what it acted on: a tenant, dead-letter positions
    outcome: str  # what came of it, in words


class AuditTrail:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, who: str, action: str, target: str, outcome: str) -> None:
        await self._db.execute(
            "INSERT INTO console_audit (at, who, action, target, outcome) VALUES (?, ?, ?, ?, ?)",
            [utc_iso(time.time()), who, action, target, outcome],
        )

    async def listed(self, before_id: int | None = None, limit: int = 50) -> list[AuditEntry]:
        where, params = ("WHERE id < ?", [before_id]) if before_id is not None else ("", [])
        rows = await self._db.fetch(
            f"SELECT id, at, who, action, target, outcome FROM console_audit {where} "  # noqa: S608 - fixed text
            "ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [AuditEntry(int(r[0]), *(str(v) for v in r[1:])) for r in rows]

    async def aclose(self) -> None:
        await self._db.aclose()


def open_audit(url: str) -> AuditTrail:
    return AuditTrail(open_database(url, AUDIT_SCHEMA))
