"""`orgstream parked` and `orgstream approve-deletions`: what waits, and releasing what is held."""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson

from workers.parking import ParkedEvent, ParkedState, open_parking


async def parked_events(
    store_url: str, tenant: str | None, state: ParkedState | None
) -> list[ParkedEvent]:
    lot = open_parking(store_url)
    try:
        return await lot.listed(tenant, state, limit=100_000)
    finally:
        await lot.aclose()


async def approve_deletions(store_url: str, tenant: str) -> int:
    """Release the tenant's held deletions; the worker applies them on its next re-drive."""
    lot = open_parking(store_url)
    try:
        return await lot.release_held(tenant, time.time())
    finally:
        await lot.aclose()


def as_lines(parked: Sequence[ParkedEvent], as_json: bool) -> str:
    if as_json:
        return "\n".join(
            orjson.dumps(
                {
                    "tenant": p.tenant,
                    "entity": p.entity_key,
                    "state": p.state,
                    "reason": p.reason,
                    "parked_at": p.parked_at,
                    "attempts": p.attempts,
                    "origin": p.origin,
                }
            ).decode()
            for p in parked
        )
    lines = [
        f"{p.parked_at[:19].replace('T', ' ')}  {p.tenant}  {p.entity_key}  {p.state}  {p.reason}"
        for p in parked
    ]
    lines.append(f"{len(parked)} event(s) waiting")
    return "\n".join(lines)
