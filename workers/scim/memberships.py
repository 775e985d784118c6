"""Membership changes of one Group from records applied side by side, coalesced into one PATCH,
as a database commits a group: a change for a Group with no PATCH in flight is sent at once;
the changes that arrive while one is in flight go together in the next (up to the target's
limit per PATCH). Idle, nothing waits; under load, one PATCH carries many records' changes.
Each caller returns only once the PATCH carrying its operation has succeeded, so its record's
offset is committed after the change is on the target, never before.

A batch the target refuses with a 4xx other than 404 is sent again one operation at a time,
so a bad operation fails only its own record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from workers.errors import ScimRejected

Operation = dict[str, Any]
Patch = Callable[[str, str, Sequence[Mapping[str, Any]]], Awaitable[None]]
Waiting = list[tuple[Operation, "asyncio.Future[None]"]]


class MembershipBatcher:
    def __init__(self, patch: Patch, per_patch: int) -> None:
        """`patch(kind, id, operations)`: the target's PATCH; `per_patch`: most operations
        in one request (targets cap them, AWS at 100)."""
        self._patch = patch
        self._per_patch = per_patch
        self._pending: dict[str, Waiting] = {}
        self._sending: set[str] = set()
        self._senders: set[asyncio.Task[None]] = set()

    async def change(self, group_id: str, operation: Operation) -> None:
        """Send one operation on the Group's members; return once it is on the target."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(group_id, []).append((operation, done))
        if group_id not in self._sending:
            self._sending.add(group_id)
            sender = asyncio.ensure_future(self._drain(group_id))
            self._senders.add(sender)  # held so it is not collected while it runs
            sender.add_done_callback(self._senders.discard)
        await done

    async def _drain(self, group_id: str) -> None:
        """PATCH what is queued for the Group, then what queued meanwhile, until nothing is."""
        try:
            while queued := self._pending.pop(group_id, None):
                for start in range(0, len(queued), self._per_patch):
                    await self._send(group_id, queued[start : start + self._per_patch])
        finally:
            self._sending.discard(group_id)
            for _, done in self._pending.pop(group_id, []):  # only left when cancelled
                done.cancel()

    async def _send(self, group_id: str, batch: Waiting) -> None:
        try:
            await self._patch("Groups", group_id, [operation for operation, _ in batch])
        except ScimRejected as refused:
            if len(batch) > 1 and refused.status != 404:
                await self._one_by_one(group_id, batch)
            else:
                _settle(batch, refused)
        except asyncio.CancelledError:
            for _, done in batch:
                done.cancel()
            raise
        except Exception as failed:  # noqa: BLE001 - every waiter learns how it ended
            _settle(batch, failed)
        else:
            _settle(batch, None)

    async def _one_by_one(self, group_id: str, batch: Waiting) -> None:
        for operation, done in batch:
            try:
                await self._patch("Groups", group_id, [operation])
            except asyncio.CancelledError:
                for _, waiting in batch:
                    waiting.cancel()  # those already settled stay settled
                raise
            except Exception as failed:  # noqa: BLE001 - handed to its own waiter
                _settle([(operation, done)], failed)
            else:
                _settle([(operation, done)], None)


def _settle(batch: Waiting, failure: Exception | None) -> None:
    for _, done in batch:
        if done.done():
            continue
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)
