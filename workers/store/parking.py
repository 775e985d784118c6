"""Parked events: out of the partition's way, kept in the store, re-driven later in order.

An event is parked when it cannot be applied now but may be later: its tenant's SCIM target is
quarantined, a dependency is missing, a transient failure outlasted the in-place retries, or
the mass-deletion guard holds it (`held`, until `orgstream approve-deletions`). Its offset is
then committed, so the partition keeps moving, and the worker's re-drive loop tries it again.

One entity's events keep their order: once an entity has a parked event, its later events are
parked behind it, and the re-drive loop applies an entity's events oldest first, stopping at
the first that still cannot be applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from schemas.event import utc_iso
from workers.store.database import Database, Row, open_database

ParkedState = Literal["parked", "held", "released"]

PARKING_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS parked_events (
    id {id},
    tenant TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    event TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    parked_at TEXT NOT NULL,
    next_attempt DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS parked_events_entity ON parked_events (tenant, entity_key)",
)
_COLUMNS: Final = (
    "id, tenant, entity_key, event, origin, state, reason, parked_at, next_attempt, attempts"
)


@dataclass(frozen=True)
class ParkedEvent:
    id: int
    tenant: str
    entity_key: str  # "user:zhangsan", "department:7"
    event: bytes  # the record value as consumed
    origin: str  # topic/partition/offset it was consumed from
    state: ParkedState
    reason: str
    parked_at: str  # RFC 3339 UTC
    next_attempt: float  # epoch seconds
    attempts: int


class ParkingLot:
    """Parked and held events, in the worker's store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def aclose(self) -> None:
        await self._db.aclose()

    async def park(
        self,
        tenant: str,
        entity_key: str,
        event: bytes,
        origin: str,
        state: ParkedState,
        reason: str,
        now: float,
        next_attempt: float,
    ) -> None:
        await self._db.execute(
            "INSERT INTO parked_events (tenant, entity_key, event, origin, state, reason,"
            " parked_at, next_attempt, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
            [tenant, entity_key, event.decode(), origin, state, reason, utc_iso(now), next_attempt],
        )

    async def is_waiting(self, tenant: str, entity_key: str) -> bool:
        """Whether the entity has an event parked: its later events must queue behind it."""
        rows = await self._db.fetch(
            "SELECT 1 FROM parked_events WHERE tenant = ? AND entity_key = ? LIMIT 1",
            [tenant, entity_key],
        )
        return bool(rows)

    async def listed(
        self, tenant: str | None = None, state: ParkedState | None = None, limit: int = 1000
    ) -> list[ParkedEvent]:
        """Oldest first, which is the order they are re-driven in."""
        clauses, params = [], []
        for column, value in (("tenant", tenant), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM parked_events {where} ORDER BY id LIMIT ?",  # noqa: S608
            [*params, limit],
        )
        return [_parked(row) for row in rows]

    async def claim(self, parked: ParkedEvent, until: float) -> bool:
        """Take the event for a re-drive (another worker process may be looking at it too):
        True for exactly one of them, which then owns it until `until`."""
        changed = await self._db.execute(
            "UPDATE parked_events SET next_attempt = ? WHERE id = ? AND next_attempt = ?",
            [until, parked.id, parked.next_attempt],
        )
        return changed == 1

    async def retry_later(self, parked_id: int, next_attempt: float, reason: str) -> None:
        await self._db.execute(
            "UPDATE parked_events SET next_attempt = ?, reason = ?, attempts = attempts + 1"
            " WHERE id = ?",
            [next_attempt, reason, parked_id],
        )

    async def hold(self, parked_id: int, reason: str) -> None:
        await self._db.execute(
            "UPDATE parked_events SET state = 'held', reason = ? WHERE id = ?",
            [reason, parked_id],
        )

    async def remove(self, parked_id: int) -> None:
        await self._db.execute("DELETE FROM parked_events WHERE id = ?", [parked_id])

    # ---- what the deletion guard holds -----------------------------------------------------

    async def release_held(self, tenant: str) -> int:
        """The tenant's held deletions, released: re-driven next without the guard."""
        return await self._db.execute(
            "UPDATE parked_events SET state = 'released', next_attempt = 0"
            " WHERE tenant = ? AND state = 'held'",
            [tenant],
        )

    async def counts(self) -> dict[tuple[str, str], int]:
        """How many wait, by (tenant, state)."""
        rows = await self._db.fetch(
            "SELECT tenant, state, count(*) FROM parked_events GROUP BY tenant, state"
        )
        return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}

    async def count_held(self, tenant: str) -> int:
        rows = await self._db.fetch(
            "SELECT count(*) FROM parked_events WHERE tenant = ? AND state = 'held'", [tenant]
        )
        return int(rows[0][0])


def open_parking(url: str) -> ParkingLot:
    return ParkingLot(open_database(url, PARKING_SCHEMA))


def _parked(row: Row) -> ParkedEvent:
    (id_, tenant, key, event, origin, state, reason, parked_at, next_attempt, attempts) = row
    return ParkedEvent(
        id=int(id_),
        tenant=tenant,
        entity_key=key,
        event=str(event).encode(),
        origin=origin,
        state=state,
        reason=reason,
        parked_at=parked_at,
        next_attempt=float(next_attempt),
        attempts=int(attempts),
    )
