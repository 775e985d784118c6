"""The mass-deletion guard's ledger: each tenant's applied deactivations and deletions, and
when an operator last approved the held ones (the guard's window starts again from there)."""

from __future__ import annotations

from typing import Final

from workers.store.database import Database, open_database

LEDGER_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS deletions (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS deletions_tenant_at ON deletions (tenant, kind, at)",
    """CREATE TABLE IF NOT EXISTS deletion_approvals (
    tenant TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
)""",
)


class DeletionLedger:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def aclose(self) -> None:
        await self._db.aclose()

    async def record_deletion(self, tenant: str, kind: str, now: float) -> None:
        await self._db.execute(
            "INSERT INTO deletions (tenant, kind, at) VALUES (?, ?, ?)", [tenant, kind, now]
        )

    async def deletions_since(self, tenant: str, kind: str, since: float) -> int:
        """Deletions of users or departments (`kind`) recorded for the tenant since `since` or
        its last approval, if later."""
        rows = await self._db.fetch(
            "SELECT max(at) FROM deletion_approvals WHERE tenant = ?", [tenant]
        )
        approved = rows[0][0]
        start = max(since, float(approved)) if approved is not None else since
        counted = await self._db.fetch(
            "SELECT count(*) FROM deletions WHERE tenant = ? AND kind = ? AND at >= ?",
            [tenant, kind, start],
        )
        return int(counted[0][0])

    async def approve(self, tenant: str, now: float) -> None:
        """An operator approved the tenant's held deletions: the window starts again now."""
        await self._db.execute(
            "INSERT INTO deletion_approvals (tenant, at) VALUES (?, ?)", [tenant, now]
        )

    async def prune_deletions(self, before: float) -> None:
        await self._db.execute("DELETE FROM deletions WHERE at < ?", [before])


def open_ledger(url: str) -> DeletionLedger:
    return DeletionLedger(open_database(url, LEDGER_SCHEMA))
