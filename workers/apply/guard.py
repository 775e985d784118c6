"""The mass-deletion guard: a tenant that suddenly loses many users is more often a broken
admin script, a wrong API scope or a vendor incident than a real mass departure.

A tenant's user deactivations/deletions and its department deletions are counted apart, over a
sliding window. When one more would exceed `guard.max_deletions`, or `guard.max_deletion_percent`
of the tenant's users (or department Groups) on the target, that deletion and every later one of
the tenant is held (parked as `held`) until `orgstream approve-deletions --tenant T` releases
them; every other change keeps flowing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final, Literal

import structlog

from schemas.config import GuardSettings
from workers.errors import Held
from workers.store.ledger import DeletionLedger
from workers.store.parking import ParkingLot

# Below this many deletions in the window the percentage is not looked at: in a tenant of ten
# users, two leavers in a day are 20 % and perfectly normal.
PERCENT_APPLIES_FROM: Final = 5
log = structlog.get_logger("orgstream.worker")

Population = Callable[[], Awaitable[int]]  # how many users (or departments) the tenant has
Kind = Literal["user", "department"]


class DeletionGuard:
    def __init__(
        self,
        settings: GuardSettings,
        ledger: DeletionLedger,
        parking: ParkingLot,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._parking = parking
        self._clock = clock

    async def admit(self, tenant: str, kind: Kind, what: str, population: Population) -> None:
        """Raise `Held` when deleting `what` now would trip the guard (or it has tripped)."""
        if not self._settings.enabled:
            return
        if await self._parking.count_held(tenant):
            raise Held(f"deletion guard: {tenant} has deletions held for approval; {what} waits")
        window = self._settings.window_minutes * 60
        count = 1 + await self._ledger.deletions_since(tenant, kind, self._clock() - window)
        limit = self._settings.max_deletions
        if count > limit:
            self._tripped(tenant, count, f"more than {limit}")
            raise Held(
                f"deletion guard: {what} would be {kind} deletion {count} of {tenant} within "
                f"{self._settings.window_minutes} min (max_deletions = {limit})"
            )
        if count >= PERCENT_APPLIES_FROM:
            total = max(1, await population())
            share = 100 * count / total
            if share > self._settings.max_deletion_percent:
                self._tripped(tenant, count, f"{share:.0f} % of {total} {kind}s")
                raise Held(
                    f"deletion guard: {what} would make {count} {kind} deletions of {tenant}'s "
                    f"{total} ({share:.0f} %) within {self._settings.window_minutes} min "
                    f"(max_deletion_percent = {self._settings.max_deletion_percent})"
                )

    async def record(self, tenant: str, kind: Kind) -> None:
        """Count a deactivation or deletion that was applied."""
        if self._settings.enabled:
            await self._ledger.record_deletion(tenant, kind, self._clock())

    def _tripped(self, tenant: str, count: int, why: str) -> None:
        log.error(
            "deletion_guard_tripped",
            tenant=tenant,
            deletions=count,
            why=why,
            release=f"orgstream approve-deletions --tenant {tenant}",
        )
