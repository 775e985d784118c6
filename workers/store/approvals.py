"""Releasing what the mass-deletion guard holds: the ledger's approval, then the held events
back to the worker, which applies them on its next re-drive. `orgstream approve-deletions` and
the console's approval both come here."""

from __future__ import annotations

import contextlib
import time

from workers.store.ledger import open_ledger
from workers.store.parking import ParkedEvent, ParkedState, open_parking


async def parked_events(
    store_url: str, tenant: str | None, state: ParkedState | None, limit: int = 100_000
) -> list[ParkedEvent]:
    lot = open_parking(store_url)
    try:
        return await lot.listed(tenant, state, limit=limit)
    finally:
        await lot.aclose()


async def approve_deletions(store_url: str, tenant: str) -> int:
    """Release the tenant's held deletions; return how many."""
    async with contextlib.AsyncExitStack() as opened:
        ledger = open_ledger(store_url)
        opened.push_async_callback(ledger.aclose)
        lot = open_parking(store_url)
        opened.push_async_callback(lot.aclose)
        await ledger.approve(tenant, time.time())
        return await lot.release_held(tenant)
