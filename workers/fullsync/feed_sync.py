"""A full sync with the directory feed on (docs/design.md, principles 1 to 3): the walk becomes
records on `orgstream.directory`, and the SCIM target is brought to the mirror, never to the
vendor directly.

1. Walk the vendor. A walk that fails publishes nothing and writes nothing.
2. Publish a record for every entity the walk found that the mirror lacks or holds otherwise
   (its version: when the walk started, so any callback resolved since wins in every sink),
   and a hint for each entity the mirror has that the walk did not find: the resolver reads
   it once more and publishes its deletion only when the vendor confirms it, and the SCIM
   sink's mass-deletion guard counts it like any leaver.
3. Wait until the resolver, the mirror and the SCIM sink have committed past all of that.
4. Reconcile the target with the mirror (the same `Reconciler` as without the feed, reading
   the mirror): what differs now is drift on the target, repaired here. Entities with records
   newer than the mirror read are left to the SCIM sink, and those that get one while the
   reconcile writes are re-resolved after it (as `run.py` does without the feed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from schemas.config import Settings
from schemas.event import ContactEvent, encode
from schemas.record import DirectoryRecord, RecordError, decode_record, encode_record
from schemas.topics import entity_key, new_traceparent
from schemas.types import Entity
from workers.apply.applier import TenantApplier
from workers.apply.appliers import Appliers
from workers.apply.records import source_department, source_user
from workers.fullsync.counts import SyncCounts
from workers.fullsync.reconcile import Reconciler, synthetic_event
from workers.kafka import offsets
from workers.kafka.catch_up import Watermark, topic_bounds, wait_caught_up
from workers.kafka.producer import EventPublisher
from workers.store.mirror import Mirror, MirroredDirectory
from workers.vendors.records import RecordMaker
from workers.vendors.walk import Progress, Snapshot, walk

# A broker that has not answered a read of the topic by then is down for this run.
_TOPIC_TIMEOUT: Final = 30.0


class RecordSender(EventPublisher, Protocol):
    """Publishes hints (as `EventPublisher`) and raw records."""

    async def send_all(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None: ...


@dataclass(frozen=True)
class FeedSync:
    """What a sync needs with the feed on: the mirror, appliers that read it (what it never
    heard of counts as gone), and a producer for records and hints."""

    settings: Settings
    mirror: Mirror
    appliers: Appliers
    producer: RecordSender

    async def aclose(self) -> None:
        await self.appliers.aclose()


@dataclass(frozen=True)
class FeedChanges:
    records: list[DirectoryRecord]
    unconfirmed: list[tuple[Entity, str]]  # in the mirror, not in the walk


def feed_changes(
    snapshot: Snapshot, mirrored: MirroredDirectory, maker: RecordMaker, version: int
) -> FeedChanges:
    """The records the walk adds to what the mirror holds, and what the walk no longer has."""
    departments = {d.id: d for d in mirrored.departments}
    users = {u.userid: u for u in mirrored.users}
    records = []
    for department in snapshot.departments.values():
        record = maker.department(department, version, [])
        if record.department != departments.get(department.id):
            records.append(record)
    for user in snapshot.users.values():
        record = maker.user(user, version, [])
        if record.user != users.get(user.userid):
            records.append(record)
    unconfirmed: list[tuple[Entity, str]] = [
        ("user", userid) for userid in sorted(users.keys() - snapshot.users.keys())
    ]
    unconfirmed += [
        ("department", str(i)) for i in sorted(departments.keys() - snapshot.departments.keys())
    ]
    return FeedChanges(records, unconfirmed)


async def preview(
    settings: Settings, mirror: Mirror, tenant: str, snapshot: Snapshot
) -> FeedChanges:
    """What a sync would publish for this walk (its dry run)."""
    tenant_settings = settings.tenant(tenant)
    assert tenant_settings is not None
    maker = RecordMaker(tenant, tenant_settings.vendor, "full_sync", settings.feed.exclude_fields)
    return feed_changes(snapshot, await mirror.directory(tenant), maker, int(time.time() * 1000))


def mirror_snapshot(mirrored: MirroredDirectory) -> Snapshot:
    return Snapshot(
        departments={d.id: source_department(d) for d in mirrored.departments},
        users={u.userid: source_user(u) for u in mirrored.users},
    )


async def publish_walk(
    tenant: str,
    vendor_applier: TenantApplier,
    feed: FeedSync,
    run_id: str,
    counts: SyncCounts,
    progress: Progress | None,
) -> float:
    """Steps 1 to 3: walk, publish what changed, wait for every stage to take it in. The run's
    deadline for waiting (`time.monotonic()`), which step 4 keeps to as well."""
    settings = feed.settings
    kafka = settings.kafka
    tenant_settings = settings.tenant(tenant)
    assert tenant_settings is not None  # an applier exists for it
    version = int(time.time() * 1000)  # before the walk: whatever it reads is at least this new
    snapshot = await walk(vendor_applier.source, progress)
    maker = RecordMaker(tenant, tenant_settings.vendor, "full_sync", settings.feed.exclude_fields)
    changes = feed_changes(snapshot, await feed.mirror.directory(tenant), maker, version)
    await feed.producer.send_all(
        kafka.directory_topic, [(r.key, encode_record(r)) for r in changes.records]
    )
    ns = vendor_applier.namespace
    hints = [synthetic_event(ns, k, i, run_id, "sync-confirm") for k, i in changes.unconfirmed]
    if hints:
        await feed.producer.publish(hints, new_traceparent())
    counts.published, counts.confirming = len(changes.records), len(changes.unconfirmed)
    deadline = time.monotonic() + settings.sync.catch_up_seconds
    await _every_stage_caught_up(feed, deadline, progress)
    return deadline


async def _every_stage_caught_up(
    feed: FeedSync, deadline: float, progress: Progress | None
) -> None:
    """The resolver past every hint published so far, then the mirror and the SCIM sink past
    every record published so far (the resolver's included)."""
    kafka = feed.settings.kafka
    report = progress or (lambda step, done, total: None)

    async def caught_up(group: str, bounds: offsets.Bounds, stage: str) -> None:
        await wait_caught_up(kafka.bootstrap_servers, group, bounds, deadline,
                             lambda done, total: report(stage, done, total))  # fmt: skip

    hint_bounds = await topic_bounds(kafka.bootstrap_servers, kafka.topic)
    await caught_up(kafka.resolver_group, hint_bounds, "resolver")
    record_bounds = await topic_bounds(kafka.bootstrap_servers, kafka.directory_topic)
    await caught_up(kafka.mirror_group, record_bounds, "mirror")
    await caught_up(kafka.consumer_group, record_bounds, "SCIM sink")


ParkHeld = Callable[[ContactEvent, bytes, str], Awaitable[None]]  # (event, payload, reason)


async def reconcile_with_mirror(
    tenant: str,
    feed: FeedSync,
    run_id: str,
    deadline: float,
    park: ParkHeld,
    progress: Progress | None,
    republish: Callable[[frozenset[str]], Awaitable[None]],
) -> tuple[SyncCounts, int]:
    """Step 4: the target brought to the mirror; (its counts, how many entities re-resolved).

    A deprovisioning the guard holds is parked as the mirror's record of the entity, which the
    SCIM sink re-drives once approved. What the target holds and the mirror never heard of is
    not deprovisioned on the mirror's silence: the resolver is asked to confirm it gone."""
    kafka = feed.settings.kafka
    applier = feed.appliers.for_tenant(tenant)
    assert applier is not None  # the same tenants as the vendor's appliers
    bounds = await topic_bounds(kafka.bootstrap_servers, kafka.directory_topic)
    await wait_caught_up(kafka.bootstrap_servers, kafka.mirror_group, bounds, deadline)
    watermark: Watermark = {tp: end for tp, (_, end) in bounds.items()}
    snapshot = mirror_snapshot(await feed.mirror.directory(tenant))
    touched = await _records_since(feed, watermark, tenant)

    async def hold(event: ContactEvent, reason: str) -> None:
        record = await feed.mirror.record(tenant, event.entity, event.entity_id)
        await park(event, encode(event) if record is None else encode_record(record), reason)

    async def confirm(kind: Entity, entity_id: str) -> None:
        hint = synthetic_event(applier.namespace, kind, entity_id, run_id, "sync-confirm")
        await feed.producer.publish([hint], new_traceparent())

    reconciler = Reconciler(applier, snapshot, run_id, touched, hold, progress, confirm)
    counts = await reconciler.run()
    recheck = await _records_since(feed, watermark, tenant)
    await republish(recheck)
    if counts.confirming:  # the run ends once the vendor has had its say on those too
        await _every_stage_caught_up(feed, deadline, progress)
    return counts, len(recheck)


async def _records_since(feed: FeedSync, watermark: Watermark, tenant: str) -> frozenset[str]:
    """The entities of this tenant that records published since `watermark` describe."""
    kafka = feed.settings.kafka
    async with asyncio.timeout(_TOPIC_TIMEOUT):
        records = await offsets.read_since(
            kafka.bootstrap_servers, kafka.directory_topic, watermark
        )
    touched: set[str] = set()
    for each in records:
        try:
            record = decode_record(each.value)
        except RecordError:
            continue  # the sinks dead-letter it; it names nothing we could trust
        if record.tenant == tenant:
            touched.add(entity_key(record.kind, record.id))
            if record.renamed_to:
                touched.add(entity_key("user", record.renamed_to))
    return frozenset(touched)


def hint_events(applier: TenantApplier, run_id: str, keys: frozenset[str]) -> list[ContactEvent]:
    """A "read it again" hint per entity key, for the resolver."""
    events = []
    for key in sorted(keys):
        entity, _, entity_id = key.partition(":")
        kind: Entity = "user" if entity == "user" else "department"
        events.append(synthetic_event(applier.namespace, kind, entity_id, run_id, "sync-recheck"))
    return events
