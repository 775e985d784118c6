"""`orgstream replay`: apply the events of a time window (or from given offsets) again.

Reading is portable (offsets.py): a time becomes an offset by searching record timestamps, the
end of the window is the high watermark fetched when the replay starts. The selected events are
coalesced per entity, because applying is idempotent and reads the source: the latest event of
each entity brings it to the source's state, as every event before it would have. Each is then
applied through the normal apply path (or planned, with `--dry-run`) and recorded in the sync
history with origin `replay <topic>/<partition>/<offset>`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord

from schemas.config import Settings
from schemas.event import ContactEvent, SchemaError, decode
from workers.apply.applier import TenantApplier
from workers.apply.appliers import Appliers
from workers.apply.records import event_of_record
from workers.attempts import Attempts
from workers.consume.outcome import (
    Delivery,
    OutcomeDispatcher,
    Settled,
    apply_once,
    apply_with_retries,
)
from workers.consume.parts import record_path, worker_parts
from workers.kafka.offsets import offset_for_time, opened_topic, read_range
from workers.scim.planning import PlanningTarget
from workers.store.mirror import open_mirror

Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class Selection:
    since: datetime | None = None
    until: datetime | None = None
    from_offsets: dict[int, int] | None = None  # partition -> offset; -1 means every partition
    tenant: str | None = None
    entity: str | None = None  # "user", "department", or "user:zhangsan"

    def chooses(self, event: ContactEvent) -> bool:
        if self.tenant is not None and event.tenant != self.tenant:
            return False
        if self.entity is None:
            return True
        kind, _, entity_id = self.entity.partition(":")
        return event.entity == kind and (not entity_id or event.entity_id == entity_id)


@dataclass
class ReplaySummary:
    read: int = 0  # records in the window
    unreadable: int = 0
    selected: int = 0  # events the filters chose
    entities: int = 0  # after coalescing
    outcomes: dict[str, int] = field(default_factory=dict)
    plans: list[dict[str, Any]] = field(default_factory=list)  # --dry-run

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "unreadable": self.unreadable,
            "selected": self.selected,
            "entities": self.entities,
            "outcomes": self.outcomes,
            "plans": self.plans,
        }


Located = tuple[ConsumerRecord[Any, Any], ContactEvent]


async def select(
    bootstrap: str,
    topic: str,
    selection: Selection,
    summary: ReplaySummary,
    decode: Callable[[bytes], ContactEvent] = decode,
) -> list[Located]:
    """The chosen events of the window, latest per entity, in topic order of those latest."""
    async with opened_topic(bootstrap, topic) as (consumer, bounds):
        partitions = list(bounds)
        if not partitions:
            return []
        starts = {}
        for tp in partitions:
            start, end = bounds[tp]
            if selection.from_offsets is not None:
                chosen = selection.from_offsets.get(tp.partition, selection.from_offsets.get(-1))
                starts[tp] = end if chosen is None else max(start, chosen)
            elif selection.since is not None:
                since_ms = int(selection.since.timestamp() * 1000)
                starts[tp] = await offset_for_time(consumer, tp, since_ms, start, end)
            else:
                starts[tp] = start
        latest: dict[bytes, Located] = {}
        window = await read_range(consumer, starts, {tp: bounds[tp][1] for tp in partitions})
        # In time order across partitions (each partition's own order is kept), as produced.
        window.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        for record in window:
            if (
                selection.until is not None
                and record.timestamp > selection.until.timestamp() * 1000
            ):
                continue
            summary.read += 1
            try:
                event = decode(record.value)
            except SchemaError:
                summary.unreadable += 1
                continue
            if selection.chooses(event):
                summary.selected += 1
                key = event.key
                latest.pop(key, None)  # re-inserted last: keeps the order of latest events
                latest[key] = (record, event)
        summary.entities = len(latest)
        return list(latest.values())


async def apply_selected(
    located: list[Located],
    summary: ReplaySummary,
    dispatcher: OutcomeDispatcher,
    appliers: Appliers,
    retries: int,
    dry_run: bool,
    progress: Progress = _no_progress,
) -> None:
    """Apply (or plan) each chosen event; what cannot be applied now is parked for the worker
    to re-drive, and every outcome is settled as the worker settles it."""
    for done, (record, event) in enumerate(located, start=1):
        origin = f"replay {record.topic}/{record.partition}/{record.offset}"
        applier = appliers.for_tenant(event.tenant)
        if applier is None:
            summary.count("unknown_tenant")
            continue
        attempts = Attempts()
        started = time.perf_counter()
        if dry_run:
            summary.plans.append(await _plan(applier, event, attempts))
            summary.count("would_change" if summary.plans[-1]["plan"] else "unchanged")
            progress(done, len(located))
            continue
        tried = await apply_with_retries(applier, event, attempts, retries, _pause)
        assert tried is not None  # replay's pause never stops
        attempt, runs = tried
        summary.count(attempt.outcome)
        settled = Settled.of(attempt, runs, time.perf_counter() - started)
        delivery = Delivery(record.value, record.key, origin)
        await dispatcher.settle(delivery, event, settled, attempts)
        progress(done, len(located))


async def _plan(applier: TenantApplier, event: ContactEvent, attempts: Attempts) -> dict[str, Any]:
    """The SCIM writes applying the event would make (the applier's target plans, not writes)."""
    attempt = await apply_once(applier, event, attempts)
    target = applier.target
    plan = target.take_plan() if isinstance(target, PlanningTarget) else []
    problem = attempt.detail if attempt.outcome not in ("applied", "skipped") else None
    return {
        "tenant": event.tenant,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "change": event.change,
        "plan": plan,
        "problem": problem,
    }


async def _pause(seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return True


async def replay_window(
    settings: Settings, selection: Selection, dry_run: bool, progress: Progress = _no_progress
) -> ReplaySummary:
    """Select hints, then apply (or plan) them through a store of the worker's: the vendor is
    read again for each entity."""
    summary = ReplaySummary()
    kafka = settings.kafka
    located = await select(kafka.bootstrap_servers, kafka.topic, selection, summary)
    async with worker_parts(settings, planning=dry_run, verify=True) as parts:
        await apply_selected(
            located,
            summary,
            parts.dispatcher,
            parts.appliers,
            settings.worker.retries_before_parking,
            dry_run,
            progress,
        )
    return summary


async def replay_records(
    settings: Settings, selection: Selection, dry_run: bool, progress: Progress = _no_progress
) -> ReplaySummary:
    """Select records of the directory feed, then apply (or plan) them as the worker's SCIM
    path does with the feed on: from the records and the mirror, never the vendor."""
    summary = ReplaySummary()
    kafka = settings.kafka
    located = await select(
        kafka.bootstrap_servers, kafka.directory_topic, selection, summary, event_of_record
    )
    async with worker_parts(settings, planning=dry_run, verify=True) as parts:
        mirror = open_mirror(settings.store.url)
        path = record_path(settings, parts, mirror, planning=dry_run, verify=True, versioned=False)
        try:
            await apply_selected(
                located, summary, path.dispatcher, path.appliers,
                settings.worker.retries_before_parking, dry_run, progress,
            )  # fmt: skip
        finally:
            await path.aclose()
            await mirror.aclose()
    return summary
