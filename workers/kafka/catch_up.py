"""Waiting for a consumer group to take in what was published: a full sync with the feed on
publishes records, then waits for the resolver, the mirror and the SCIM sink to commit past
them before it compares the target with the mirror."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiokafka import TopicPartition

from workers.kafka import offsets

Watermark = dict[TopicPartition, int]
_POLL_SECONDS: Final = 0.5
_TOPIC_TIMEOUT: Final = 30.0


class NotCaughtUp(TimeoutError):
    """A group did not commit past the watermark in time; the message names it."""


async def topic_end(bootstrap: str, topic: str) -> Watermark:
    """Each partition's end offset now: everything published so far lies below it."""
    async with asyncio.timeout(_TOPIC_TIMEOUT):
        async with offsets.opened_topic(bootstrap, topic) as (_, bounds):
            return {tp: end for tp, (_, end) in bounds.items()}


async def wait_caught_up(bootstrap: str, group: str, watermark: Watermark, within: float) -> None:
    """Return once `group` has committed at least `watermark` on every partition."""
    deadline = time.monotonic() + within
    waiting = {tp: end for tp, end in watermark.items() if end > 0}
    while waiting:
        committed = await offsets.committed_offsets(bootstrap, group, list(waiting))
        waiting = {tp: end for tp, end in waiting.items() if (committed.get(tp) or 0) < end}
        if not waiting:
            return
        if time.monotonic() >= deadline:
            behind = sum(end - (committed.get(tp) or 0) for tp, end in waiting.items())
            raise NotCaughtUp(
                f"consumer group {group} is still {behind} records short of the sync's records"
                f" after {within:.0f} s: is its worker running?"
            )
        await asyncio.sleep(_POLL_SECONDS)
