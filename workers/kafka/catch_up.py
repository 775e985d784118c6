"""Waiting for a consumer group to take in what was published: a full sync with the feed on
publishes records, then waits for the resolver, the mirror and the SCIM sink to commit past
them before it compares the target with the mirror."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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
    return {tp: end for tp, (_, end) in (await topic_bounds(bootstrap, topic)).items()}


async def topic_bounds(bootstrap: str, topic: str) -> offsets.Bounds:
    async with asyncio.timeout(_TOPIC_TIMEOUT):
        async with offsets.opened_topic(bootstrap, topic) as (_, bounds):
            return bounds


async def wait_caught_up(
    bootstrap: str,
    group: str,
    bounds: offsets.Bounds,
    deadline: float,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Return once `group` has committed at least each partition's end in `bounds` (a
    partition it never committed counts as read up to its log start, so one whose records
    have all expired holds nothing to wait for); by `deadline` (`time.monotonic()`) at the
    latest, else `NotCaughtUp`. `progress(records taken in, records to take in)`."""
    starts = {tp: start for tp, (start, _) in bounds.items()}
    waiting = {tp: end for tp, (start, end) in bounds.items() if end > start}
    total = sum(end - starts[tp] for tp, end in waiting.items())
    while waiting:
        committed = await offsets.committed_offsets(bootstrap, group, list(waiting))
        behind = {tp: end - max(committed.get(tp) or 0, starts[tp]) for tp, end in waiting.items()}
        if progress is not None:
            progress(total - sum(max(b, 0) for b in behind.values()), total)
        waiting = {tp: end for tp, end in waiting.items() if behind[tp] > 0}
        if not waiting:
            return
        if time.monotonic() >= deadline:
            short = sum(behind[tp] for tp in waiting)
            raise NotCaughtUp(
                f"consumer group {group} is still {short} records short of the sync's records"
                " when the run's [sync] catch_up_seconds ran out: is its worker running?"
            )
        await asyncio.sleep(_POLL_SECONDS)
