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
from typing import Any, Final

from aiokafka import ConsumerRecord

from schemas.config import Settings
from schemas.event import ContactEvent, SchemaError, decode
from workers.apply import TenantApplier
from workers.attempts import Attempts, recording
from workers.errors import DeadLetter, Held, RetryLater
from workers.guard import DeletionGuard
from workers.history import HistoryEntry, HistoryStore, Outcome, open_history
from workers.offsets import offset_for_time, opened_topic, read_range
from workers.parking import ParkingLot, entity_key, open_parking
from workers.planning import PlanningTarget
from workers.progress import terminal_progress
from workers.tenants import Appliers

_RETRY_DELAYS: Final = (0.5, 1.0, 2.0)


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
    bootstrap: str, topic: str, selection: Selection, summary: ReplaySummary
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
        latest: dict[str, Located] = {}
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
                key = f"{event.tenant}:{entity_key(event.entity, event.entity_id)}"
                latest.pop(key, None)  # re-inserted last: keeps the order of latest events
                latest[key] = (record, event)
        summary.entities = len(latest)
        return list(latest.values())


async def apply_selected(
    settings: Settings,
    located: list[Located],
    summary: ReplaySummary,
    history: HistoryStore,
    parking: ParkingLot,
    appliers: Appliers,
    dry_run: bool,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> None:
    for done, (record, event) in enumerate(located, start=1):
        origin = f"replay {record.topic}/{record.partition}/{record.offset}"
        applier = appliers.for_tenant(event.tenant)
        if applier is None:
            summary.count("unknown_tenant")
            continue
        attempts = Attempts()
        started = time.perf_counter()
        outcome, detail, writes = await _apply(applier, event, attempts, retry=not dry_run)
        if dry_run:
            target = applier.target
            plan = target.take_plan() if isinstance(target, PlanningTarget) else []
            problem = detail if outcome not in ("applied", "skipped") else None
            summary.plans.append(
                {
                    "tenant": event.tenant,
                    "entity": event.entity,
                    "entity_id": event.entity_id,
                    "change": event.change,
                    "plan": plan,
                    "problem": problem,
                }
            )
            summary.count("would_change" if plan else "unchanged")
            progress(done, len(located))
            continue
        if outcome in ("parked", "held"):
            # The worker re-drives it (or releases it on approval), like any parked event.
            now = time.time()
            retry_at = now + settings.worker.redrive_interval_seconds
            key = entity_key(event.entity, event.entity_id)
            reason = detail or ""
            await parking.park(
                event.tenant, key, record.value, origin, outcome, reason, now, retry_at
            )
        summary.count(outcome)
        elapsed = time.perf_counter() - started
        runs = 1 + len(attempts.notes)
        await history.record(
            HistoryEntry.of(event, outcome, origin, runs, elapsed, attempts.notes, writes, detail)
        )
        progress(done, len(located))


async def _apply(
    applier: TenantApplier, event: ContactEvent, attempts: Attempts, retry: bool
) -> tuple[Outcome, str | None, list[str]]:
    """Apply once, retrying brief failures a few times: (outcome, detail, SCIM writes)."""
    for delay in (*(_RETRY_DELAYS if retry else ()), None):
        try:
            with recording(attempts):
                ops = await applier.apply(event)
        except RetryLater as exc:
            if delay is None:
                return "parked", str(exc), []
            attempts.notes.append(f"{exc}; retried in {delay} s")
            await asyncio.sleep(delay)
        except Held as exc:
            return "held", str(exc), []
        except DeadLetter as exc:
            return "dead_lettered", str(exc), []
        else:
            if ops.writes:
                return "applied", None, ops.writes
            return "skipped", ops.skip_reason, []
    raise AssertionError("unreachable")


async def replay_window(settings: Settings, selection: Selection, dry_run: bool) -> ReplaySummary:
    """Select, then apply (or plan) through a store of the worker's, so what cannot be applied
    now is parked for the worker to re-drive, and every outcome is in the history."""
    summary = ReplaySummary()
    kafka = settings.kafka
    located = await select(kafka.bootstrap_servers, kafka.topic, selection, summary)
    history = open_history(settings.store.url)
    parking = open_parking(settings.store.url)
    guard = None if dry_run else DeletionGuard(settings.guard, parking)
    appliers = Appliers(settings, guard, planning=dry_run)
    try:
        await apply_selected(
            settings, located, summary, history, parking, appliers, dry_run, terminal_progress
        )
    finally:
        await appliers.aclose()
        await history.aclose()
        await parking.aclose()
    return summary


def summary_lines(summary: ReplaySummary) -> str:
    lines = []
    for plan in summary.plans:
        what = f"{plan['tenant']} {plan['entity']} {plan['entity_id']} ({plan['change']})"
        if plan["problem"]:
            lines.append(f"{what}: cannot plan: {plan['problem']}")
        for step in plan["plan"]:
            lines.append(f"{what}: {step}")
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(summary.outcomes.items()))
    lines.append(
        f"{summary.read} event(s) read, {summary.selected} selected, "
        f"{summary.entities} entit(ies) after coalescing: {counts or 'nothing to do'}"
    )
    return "\n".join(lines)
