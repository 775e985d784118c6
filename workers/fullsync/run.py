"""One full sync of one tenant: walk the vendor directory, reconcile the SCIM target with it,
record the run. `orgstream sync` and the worker's schedule both run it.

No stale overwrite. Callbacks keep flowing while the walk runs, and the snapshot may hold an
entity as it was before such a callback. So the sync notes the topic's end before the walk;
after the walk it reads what arrived since, and leaves every entity named there to the event
path (the worker applies those callbacks in order). Once its own writes are done it reads the
topic again and publishes one "re-read" event per entity touched since the start, keyed like
any other event: the worker applies it after everything before it on that key, reading the
source's state at that moment, so nothing the snapshot wrote can outlive a newer change.

Only one run per tenant at a time: a lease in the store, renewed while the run lasts, held by
whichever process runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from schemas.config import KafkaSettings
from schemas.event import ContactEvent, SchemaError, decode, encode
from schemas.topics import entity_key, new_traceparent
from workers.apply.applier import TenantApplier
from workers.errors import ApplyError
from workers.fullsync.counts import SyncCounts
from workers.fullsync.feed_sync import (
    FeedChanges,
    FeedSync,
    hint_events,
    publish_walk,
    reconcile_with_mirror,
)
from workers.fullsync.reconcile import Reconciler
from workers.kafka import offsets
from workers.kafka.producer import EventPublisher, PublishFailed
from workers.scim.planning import PlanningTarget
from workers.store.parking import ParkingLot
from workers.store.sync_runs import RunStatus, SyncRuns, Trigger, new_holder
from workers.vendors.walk import Progress, Snapshot, WalkFailed, walk

LEASE_SECONDS: Final = 120.0
_TOPIC_TIMEOUT: Final = 30.0
log = structlog.get_logger("orgstream.sync")

Watermark = dict[TopicPartition, int]
FeedPreview = Callable[[Snapshot], Awaitable[FeedChanges]]  # what the walk adds to the feed


class SyncBusy(Exception):
    """Another run of this tenant holds the lease."""


@dataclass
class SyncOutcome:
    run_id: str
    status: RunStatus
    counts: SyncCounts
    errors: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)  # dry run: the writes it would make
    rechecked: int = 0  # entities re-read through the topic after the run's writes


@dataclass
class SyncContext:
    """What a run needs besides the tenant's applier: the topic, where runs are kept, and,
    with the directory feed on, what a sync through the feed needs (`feed_sync.py`)."""

    kafka: KafkaSettings
    runs: SyncRuns
    parking: ParkingLot
    publisher: EventPublisher
    feed: FeedSync | None = None


async def full_sync(
    tenant: str,
    applier: TenantApplier,
    context: SyncContext,
    trigger: Trigger,
    progress: Progress | None = None,
    only_if: Callable[[], Awaitable[bool]] | None = None,
) -> SyncOutcome | None:
    """Run one full sync under the tenant's lease; the run is recorded whatever happens.
    `only_if` is checked once the lease is held (a schedule's "still due?"): None if not."""
    holder = new_holder()
    if not await context.runs.acquire(tenant, holder, time.time(), LEASE_SECONDS):
        raise SyncBusy(f"a full sync of {tenant} is already running")
    if only_if is not None and not await only_if():
        await context.runs.release(tenant, holder)
        return None
    renewing = asyncio.create_task(_renew(context.runs, tenant, holder))
    run_id = await context.runs.start(tenant, trigger, time.time())
    log.info("sync_started", tenant=tenant, run=run_id, trigger=trigger)
    outcome = SyncOutcome(run_id, "failed", SyncCounts())
    try:
        await _run(tenant, applier, context, progress, outcome)
    except asyncio.CancelledError:
        outcome.status = "interrupted"
        raise
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await asyncio.shield(_record(context, tenant, holder, outcome))
    return outcome


async def plan_sync(
    applier: TenantApplier,
    progress: Progress | None = None,
    feed: FeedPreview | None = None,
) -> SyncOutcome:
    """`--dry-run`: walk and reconcile against a target that only writes its writes down
    (`Appliers(planning=True)`); nothing is recorded, locked or published. With the feed on
    (`feed`), the plan also counts the records the walk would publish and the entities it
    would ask the resolver to confirm gone."""
    try:
        snapshot = await walk(applier.source, progress)
        counts = await Reconciler(applier, snapshot, "dry-run", progress=progress).run()
    except (WalkFailed, ApplyError) as exc:
        return SyncOutcome("dry-run", "failed", SyncCounts(), [f"{type(exc).__name__}: {exc}"])
    target = applier.target
    plan = target.take_plan() if isinstance(target, PlanningTarget) else []
    if feed is not None:
        changes = await feed(snapshot)
        counts.published, counts.confirming = len(changes.records), len(changes.unconfirmed)
        plan += [f"publish {r.kind} {r.id}" for r in changes.records]
        plan += [f"confirm gone at the vendor: {kind} {id_}" for kind, id_ in changes.unconfirmed]
    return SyncOutcome("dry-run", "succeeded", counts, counts.errors, plan)


async def _run(
    tenant: str,
    applier: TenantApplier,
    context: SyncContext,
    progress: Progress | None,
    outcome: SyncOutcome,
) -> None:
    async def park(event: ContactEvent, payload: bytes, reason: str) -> None:
        await context.parking.park(
            tenant,
            entity_key(event.entity, event.entity_id),
            payload,
            f"full sync {outcome.run_id}",
            "held",
            reason,
            time.time(),
            time.time(),
        )

    async def hold(event: ContactEvent, reason: str) -> None:
        await park(event, encode(event), reason)

    async def republish(keys: frozenset[str]) -> None:
        events = hint_events(applier, outcome.run_id, keys)
        if events:
            await context.publisher.publish(events, new_traceparent())

    try:
        if context.feed is not None:
            walked = SyncCounts()
            deadline = await publish_walk(
                tenant, applier, context.feed, outcome.run_id, walked, progress
            )
            outcome.counts, outcome.rechecked = await reconcile_with_mirror(
                tenant, context.feed, outcome.run_id, deadline, park, progress, republish
            )
            outcome.counts.published = walked.published
            outcome.counts.confirming += walked.confirming
        else:
            watermark = await _topic_end(context.kafka)
            snapshot = await walk(applier.source, progress)
            touched = await _touched_since(context.kafka, watermark, tenant)
            reconciler = Reconciler(applier, snapshot, outcome.run_id, touched, hold, progress)
            outcome.counts = await reconciler.run()
            recheck = await _touched_since(context.kafka, watermark, tenant)
            await republish(recheck)
            outcome.rechecked = len(recheck)
        outcome.errors = outcome.counts.errors
        outcome.status = "failed" if outcome.counts.failed else "succeeded"
    except (WalkFailed, ApplyError, TimeoutError, PublishFailed, KafkaError) as exc:
        # A failed walk writes nothing at all, so nothing is deprovisioned on a partial view.
        outcome.status = "failed"
        outcome.errors = [*outcome.counts.errors, f"{type(exc).__name__}: {exc}"]
    except Exception as exc:
        outcome.errors = [*outcome.counts.errors, f"{type(exc).__name__}: {exc}"]
        raise  # a bug: recorded as failed, and not swallowed


async def _record(context: SyncContext, tenant: str, holder: str, outcome: SyncOutcome) -> None:
    counts = outcome.counts.to_dict()
    await context.runs.finish(outcome.run_id, outcome.status, time.time(), counts, outcome.errors)
    await context.runs.release(tenant, holder)
    log.info("sync_finished", tenant=tenant, run=outcome.run_id, status=outcome.status, **counts)
    for error in outcome.errors[:20]:
        log.warning("sync_error", tenant=tenant, run=outcome.run_id, error=error)


async def _renew(runs: SyncRuns, tenant: str, holder: str) -> None:
    while True:
        await asyncio.sleep(LEASE_SECONDS / 4)
        await runs.acquire(tenant, holder, time.time(), LEASE_SECONDS)


async def _topic_end(kafka: KafkaSettings) -> Watermark:
    async with asyncio.timeout(_TOPIC_TIMEOUT):
        async with offsets.opened_topic(kafka.bootstrap_servers, kafka.topic) as (_, bounds):
            return {tp: end for tp, (_, end) in bounds.items()}


async def _touched_since(kafka: KafkaSettings, watermark: Watermark, tenant: str) -> frozenset[str]:
    """The entities of this tenant that events published since `watermark` name."""
    async with asyncio.timeout(_TOPIC_TIMEOUT):
        records = await offsets.read_since(kafka.bootstrap_servers, kafka.topic, watermark)
    touched: set[str] = set()
    for record in records:
        try:
            event = decode(record.value)
        except SchemaError:
            continue  # the worker dead-letters it; it names nothing we could trust
        if event.tenant != tenant:
            continue
        touched.add(entity_key(event.entity, event.entity_id))
        new_userid = event.attributes.get("new_userid")
        if isinstance(new_userid, str):
            touched.add(entity_key("user", new_userid))
    return frozenset(touched)
