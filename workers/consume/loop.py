"""The worker loop: consume, apply, and commit only once each event has an outcome.

What an outcome is and what it does is decided in `outcome.py`: applied, skipped, retried in
place while a failure looks brief, parked, held, or dead-lettered. Parked and held events live
in the store, so their offsets are committed and the partition keeps moving; `redrive.py`
applies them later, one entity's events in order. Every outcome goes to the sync history.

Within a fetched batch each tenant is a lane of its own, and within a lane each entity: one
entity's events run in order, different entities (up to `worker.apply_concurrency` per tenant)
and tenants side by side. Two processes or tasks creating the same department are kept apart
by the claims in the target's ledger; a userid change and both ids' events share one queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from schemas.config import KafkaSettings, WorkerSettings
from schemas.event import ContactEvent, SchemaError, decode
from schemas.topics import entity_key
from workers import metrics
from workers.apply.appliers import Appliers
from workers.attempts import Attempts
from workers.consume.outcome import (
    Delivery,
    Handoff,
    OutcomeDispatcher,
    Settled,
    VersionGate,
    apply_with_retries,
)
from workers.consume.redrive import Redriver
from workers.kafka.batches import start_consumer
from workers.kafka.lag import measure_lag
from workers.kafka.producer import Producer

log = structlog.get_logger("orgstream.worker")
Record: TypeAlias = "ConsumerRecord[Any, Any]"


@dataclass(frozen=True)
class Source:
    """What the worker consumes: a topic, how a value becomes the applier's input (an
    unreadable value raises `SchemaError`), for versioned records the gate, and where a parked
    payload of the other path goes (`Handoff`)."""

    topic: str
    decode: Callable[[bytes], ContactEvent]
    versions: VersionGate | None = None
    handoff: Handoff | None = None


class BackgroundJob(Protocol):
    """Runs beside the consumer until cancelled: the full-sync schedule, the feed's stages."""

    async def run_forever(self) -> None: ...


class Worker:
    def __init__(
        self,
        kafka: KafkaSettings,
        appliers: Appliers,
        dispatcher: OutcomeDispatcher,
        producer: Producer,
        settings: WorkerSettings | None = None,
        beside: Sequence[BackgroundJob] = (),
        source: Source | None = None,
    ) -> None:
        """`source`: the topic read and how its values become applier input (default: the
        hints of `kafka.topic`; with the directory feed on, its records)."""
        self._kafka = kafka
        self._appliers = appliers
        self._dispatcher = dispatcher
        self._producer = producer
        self._settings = settings or WorkerSettings()
        self._beside = beside
        self._source = source or Source(kafka.topic, decode)
        source = self._source
        self._redriver = Redriver(
            appliers, dispatcher, self._settings, source.decode, source.versions, source.handoff
        )
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self._source.topic,
            bootstrap_servers=self._kafka.bootstrap_servers,
            group_id=self._kafka.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._kafka.session_timeout_ms,
            heartbeat_interval_ms=max(300, self._kafka.session_timeout_ms // 4),
        )
        await start_consumer(consumer)
        await self._producer.start()
        log.info("worker_started", topic=self._source.topic, group=self._kafka.consumer_group)
        background = [
            asyncio.create_task(self._redriver.run_forever()),
            asyncio.create_task(self._measure_lag_forever()),
        ]
        # The full-sync schedule, and the feed's stages when they are on.
        background += [asyncio.create_task(job.run_forever()) for job in self._beside]
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=200)
                if batches:
                    await self._process(consumer, batches)
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await consumer.stop()
            log.info("worker_stopped")

    async def redrive(self) -> None:
        """One round of re-driving parked events (tests call it directly)."""
        await self._redriver.redrive()

    async def _process(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Record]]
    ) -> None:
        """Run the batch in one lane per tenant, then commit, per partition, every offset below
        the first record without an outcome (all of them unless asked to stop)."""
        lanes: dict[str, list[tuple[Record, ContactEvent | SchemaError]]] = defaultdict(list)
        for records in batches.values():
            for record in records:
                try:
                    event: ContactEvent | SchemaError = self._source.decode(record.value)
                except SchemaError as exc:
                    event = exc
                tenant = event.tenant if isinstance(event, ContactEvent) else ""
                lanes[tenant].append((record, event))
        done: set[tuple[int, int]] = set()
        await asyncio.gather(*(self._lane(lane, done) for lane in lanes.values()))
        offsets = {}
        for partition, records in batches.items():
            committable = records[0].offset
            for record in records:
                if (record.partition, record.offset) not in done:
                    break
                committable = record.offset + 1
            if committable > records[0].offset:
                offsets[partition] = committable
        if offsets:
            await consumer.commit(offsets)

    async def _lane(
        self,
        lane: list[tuple[Record, ContactEvent | SchemaError]],
        done: set[tuple[int, int]],
    ) -> None:
        """One tenant's records: each entity's in order, entities side by side (bounded). A
        userid change and the events of both ids share one queue, in the lane's order."""
        alias: dict[str, str] = {}
        for record, event in lane:
            for new_id in _also_touched(event):
                old_id = _turn_key(record, event)
                alias[new_id] = alias.get(old_id, old_id)
        queues: dict[str, list[tuple[Record, ContactEvent | SchemaError]]] = defaultdict(list)
        for record, event in lane:
            key = _turn_key(record, event)
            queues[alias.get(key, key)].append((record, event))
        gate = asyncio.Semaphore(self._settings.apply_concurrency)

        async def entity(queue: list[tuple[Record, ContactEvent | SchemaError]]) -> None:
            async with gate:
                for record, event in queue:
                    if not await self._handle(record, event):
                        return  # stopping mid-retry: the next owner gets it uncommitted
                    done.add((record.partition, record.offset))

        await asyncio.gather(*(entity(queue) for queue in queues.values()))

    async def _handle(self, record: Record, event: ContactEvent | SchemaError) -> bool:
        """Give the record an outcome; False only when asked to stop before it had one."""
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        delivery = Delivery(record.value, record.key, origin)
        settle = self._dispatcher.settle
        with structlog.contextvars.bound_contextvars(record=origin):
            if isinstance(event, SchemaError):
                await settle(delivery, None, Settled("dead_lettered", f"schema: {event}"))
                return True
            applier = self._appliers.for_tenant(event.tenant)
            if applier is None:
                error = f"unknown tenant {event.tenant!r}"
                await settle(delivery, event, Settled("dead_lettered", error))
                return True
            gate = self._source.versions
            stale = None if gate is None else await gate.superseded(record.value)
            if stale is not None:
                await settle(delivery, event, Settled("skipped", stale))
                return True
            waiting = await self._waiting_reason(event, applier.target.health.reason)
            if waiting is not None:
                await settle(delivery, event, Settled("parked", waiting), Attempts())
                return True
            if self._stopping.is_set():
                return False  # asked to stop: the rest of the batch is the next owner's
            attempts, started = Attempts(), time.perf_counter()
            parks = self._dispatcher.parking is not None
            retries = self._settings.retries_before_parking if parks else None
            tried = await apply_with_retries(applier, event, attempts, retries, self._pause)
            if tried is None:
                return False
            attempt, runs = tried
            elapsed = time.perf_counter() - started
            if attempt.outcome in ("applied", "skipped"):
                log.info(
                    "applied",
                    event_id=event.event_id,
                    tenant=event.tenant,
                    entity=event.entity,
                    entity_id=event.entity_id,
                    change=event.change,
                    writes=list(attempt.writes),
                    retries=attempts.retries,
                )
                if gate is not None:
                    await gate.applied(record.value)
            await settle(delivery, event, Settled.of(attempt, runs, elapsed), attempts)
            return True

    async def _waiting_reason(self, event: ContactEvent, quarantine: str | None) -> str | None:
        """Why the event must wait in the parking lot without being tried, if it must."""
        parking = self._dispatcher.parking
        if parking is None:
            return None
        if quarantine is not None:
            return f"SCIM target quarantined: {quarantine}"
        if await parking.is_waiting(event.tenant, entity_key(event.entity, event.entity_id)):
            return "behind an earlier parked event of the same entity"
        return None

    async def _measure_lag_forever(self) -> None:
        """The group's lag for /metrics, measured as `orgstream lag` does, every poll interval."""
        kafka = self._kafka
        while True:
            try:
                lag = await measure_lag(
                    kafka.bootstrap_servers, self._source.topic, kafka.consumer_group
                )
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the worker
                log.warning("lag_measure_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                metrics.export_lag(kafka.cluster_name, lag)
            await asyncio.sleep(self._settings.lag_poll_seconds)

    async def _pause(self, seconds: float) -> bool:
        """Sleep before a retry; False when asked to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()


def _turn_key(record: Record, event: ContactEvent | SchemaError) -> str:
    if isinstance(event, SchemaError):
        return f"unreadable:{record.partition}:{record.offset}"  # each one alone
    return entity_key(event.entity, event.entity_id)


def _also_touched(event: ContactEvent | SchemaError) -> list[str]:
    if isinstance(event, ContactEvent) and event.change == "renamed":
        new_userid = event.attributes.get("new_userid")
        if new_userid:
            return [entity_key("user", str(new_userid))]
    return []
