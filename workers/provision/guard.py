"""The mass-deletion guard on the way into the vendor: an IdP that suddenly deletes or
deactivates many users (a wrong assignment, a broken sync rule) is held, as the worker holds
a vendor that suddenly loses many (workers/apply/guard.py), with the same `[guard]` limits.

A write the guard holds is answered 503 with `Retry-After`: the IdP retries it, and once an
operator runs `orgstream approve-deletions --tenant T` (which starts the guard's window again)
the retry goes through. These deletions are counted apart from the worker's (`to-vendor:`
kinds), so neither direction trips the other's guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import structlog

from schemas.config import GuardSettings
from workers.apply.guard import PERCENT_APPLIES_FROM
from workers.provision.errors import ProvisionError
from workers.store.directory_index import DirectoryIndex
from workers.store.directory_rows import GROUP, USER
from workers.store.ledger import DeletionLedger

RETRY_AFTER: Final = 60.0  # an IdP retrying a held write every minute costs nothing
log = structlog.get_logger("orgstream.provisioning")


class HeldByGuard(ProvisionError):
    """A deletion or deactivation the guard holds until an operator approves."""


class ProvisioningGuard:
    def __init__(
        self,
        settings: GuardSettings,
        ledger: DeletionLedger,
        index: DirectoryIndex,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._index = index
        self._clock = clock

    async def admit(self, tenant: str, kind: str, what: str) -> None:
        """Raise the 503 when deleting (or deactivating) `what` now would trip the guard."""
        if not self._settings.enabled:
            return
        window = self._settings.window_minutes * 60
        count = 1 + await self._ledger.deletions_since(
            tenant, _counted(kind), self._clock() - window
        )
        why = None
        if count > self._settings.max_deletions:
            why = f"more than max_deletions = {self._settings.max_deletions}"
        elif count >= PERCENT_APPLIES_FROM:
            total = max(1, await self._index.count(tenant, USER if kind == "user" else GROUP))
            share = 100 * count / total
            if share > self._settings.max_deletion_percent:
                why = (
                    f"{share:.0f} % of {total}, over max_deletion_percent = "
                    f"{self._settings.max_deletion_percent}"
                )
        if why is None:
            return
        approve = f"orgstream approve-deletions --tenant {tenant}"
        log.error("provisioning_deletions_held", tenant=tenant, deletions=count, why=why,
                  release=approve)  # fmt: skip
        raise HeldByGuard(
            503,
            f"held by the mass-deletion guard: {what} would be {kind} deletion {count} of "
            f"{tenant} within {self._settings.window_minutes} min ({why}); it goes through "
            f"when retried after an operator runs `{approve}`",
            retry_after=RETRY_AFTER,
        )

    async def record(self, tenant: str, kind: str) -> None:
        if self._settings.enabled:
            await self._ledger.record_deletion(tenant, _counted(kind), self._clock())


def _counted(kind: str) -> str:
    return f"to-vendor:{kind}"
