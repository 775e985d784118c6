"""Full-sync runs in the worker's store: one row per run (trigger, start, end, counts, errors),
and a per-tenant lease so that only one run per tenant is under way, whichever process (a
worker's schedule, an operator's `orgstream sync`) starts it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from schemas.event import utc_iso
from workers.store.database import Database, Row, open_database

Trigger = Literal["manual", "schedule", "recovery"]
RunStatus = Literal["running", "succeeded", "failed", "interrupted"]
COUNT_NAMES: Final = (
    "created",
    "updated",
    "deactivated",
    "deleted",
    "unchanged",
    "held",
    "deferred",
    "failed",
    "published",
    "confirming",
)

RUNS_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS sync_runs (
    id {id},
    run_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    started_epoch DOUBLE PRECISION NOT NULL,
    ended_at TEXT,
    counts TEXT NOT NULL,
    errors TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS sync_runs_tenant ON sync_runs (tenant, started_epoch)",
    """CREATE TABLE IF NOT EXISTS sync_leases (
    tenant TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL
)""",
)
_COLUMNS: Final = (
    "run_id, tenant, trigger_kind, status, started_at, started_epoch, ended_at, counts, errors"
)


@dataclass(frozen=True)
class SyncRun:
    run_id: str
    tenant: str
    trigger: Trigger
    status: RunStatus
    started_at: str
    started_epoch: float
    ended_at: str | None
    counts: dict[str, int]
    errors: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tenant": self.tenant,
            "trigger": self.trigger,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "counts": self.counts,
            "errors": self.errors,
        }


class SyncRuns:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def aclose(self) -> None:
        await self._db.aclose()

    # ---- the lease ----------------------------------------------------------------------

    async def acquire(self, tenant: str, holder: str, now: float, seconds: float) -> bool:
        """Take (or renew) the tenant's lease unless someone else holds an unexpired one."""
        await self._db.execute(
            "INSERT INTO sync_leases (tenant, holder, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant) DO UPDATE SET holder = excluded.holder,"
            " expires = excluded.expires"
            " WHERE sync_leases.holder = excluded.holder OR sync_leases.expires < ?",
            [tenant, holder, now + seconds, now],
        )
        rows = await self._db.fetch("SELECT holder FROM sync_leases WHERE tenant = ?", [tenant])
        return bool(rows) and rows[0][0] == holder

    async def release(self, tenant: str, holder: str) -> None:
        await self._db.execute(
            "DELETE FROM sync_leases WHERE tenant = ? AND holder = ?", [tenant, holder]
        )

    # ---- runs ---------------------------------------------------------------------------

    async def start(self, tenant: str, trigger: Trigger, now: float) -> str:
        run_id = f"{tenant}-{secrets.token_hex(4)}"
        await self._db.execute(
            f"INSERT INTO sync_runs ({_COLUMNS})"  # noqa: S608 - fixed names
            " VALUES (?, ?, ?, 'running', ?, ?, NULL, ?, ?)",
            [run_id, tenant, trigger, utc_iso(now), now, "{}", "[]"],
        )
        return run_id

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        now: float,
        counts: dict[str, int],
        errors: list[str],
    ) -> None:
        await self._db.execute(
            "UPDATE sync_runs SET status = ?, ended_at = ?, counts = ?, errors = ?"
            " WHERE run_id = ?",
            [
                status,
                utc_iso(now),
                orjson.dumps(counts).decode(),
                orjson.dumps(errors).decode(),
                run_id,
            ],
        )

    async def last_started(self, tenant: str, trigger: Trigger | None = None) -> float | None:
        """When the tenant's latest run (of this trigger) started, in epoch seconds."""
        sql = "SELECT MAX(started_epoch) FROM sync_runs WHERE tenant = ?"
        params: list[Any] = [tenant]
        if trigger is not None:
            sql += " AND trigger_kind = ?"
            params.append(trigger)
        rows = await self._db.fetch(sql, params)
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def listed(self, tenant: str | None = None, limit: int = 20) -> list[SyncRun]:
        """Newest first."""
        sql = f"SELECT {_COLUMNS} FROM sync_runs"  # noqa: S608 - fixed names
        params: list[Any] = []
        if tenant:
            sql += " WHERE tenant = ?"
            params.append(tenant)
        sql += " ORDER BY started_epoch DESC, id DESC LIMIT ?"
        params.append(limit)
        return [_run(row) for row in await self._db.fetch(sql, params)]


def open_runs(url: str) -> SyncRuns:
    return SyncRuns(open_database(url, RUNS_SCHEMA))


def new_holder() -> str:
    return secrets.token_hex(8)


def _run(row: Row) -> SyncRun:
    run_id, tenant, trigger, status, started_at, started_epoch, ended_at, counts, errors = row
    return SyncRun(
        run_id=run_id,
        tenant=tenant,
        trigger=trigger,
        status=status,
        started_at=started_at,
        started_epoch=float(started_epoch),
        ended_at=ended_at,
        counts=orjson.loads(counts),
        errors=orjson.loads(errors),
    )
