"""The worker loop: consume, apply, and commit only once each event has an outcome.

Outcomes: applied; retried in place while the failure is transient (nothing is committed past
it); dead-lettered with the error in the record headers when retrying cannot help. Every
outcome goes to the sync history with its attempts, the retried steps and the SCIM writes.

Within a fetched batch each tenant is a lane of its own: one tenant's events run in order,
while a tenant whose vendor throttles or whose target is down does not hold back the other
tenants' events in the batch (the next fetch waits for the slowest lane; parking a tenant that
stays down is issue 4's).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any, Final, Protocol, TypeAlias

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from schemas.config import KafkaSettings
from schemas.event import ContactEvent, SchemaError, decode, utc_iso
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN
from workers.apply import TenantApplier
from workers.attempts import Attempts, recording
from workers.errors import DeadLetter, RetryLater
from workers.history import HistoryEntry, Outcome
from workers.tenants import Appliers

_MAX_BACKOFF: Final = 30.0
log = structlog.get_logger("orgstream.worker")
Record: TypeAlias = "ConsumerRecord[Any, Any]"


class History(Protocol):
    async def record(self, entry: HistoryEntry) -> None: ...


class Worker:
    def __init__(
        self, kafka: KafkaSettings, appliers: Appliers, history: History | None = None
    ) -> None:
        self._kafka = kafka
        self._appliers = appliers
        self._history = history
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self._kafka.topic,
            bootstrap_servers=self._kafka.bootstrap_servers,
            group_id=self._kafka.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._kafka.session_timeout_ms,
            heartbeat_interval_ms=max(300, self._kafka.session_timeout_ms // 4),
        )
        dlq = AIOKafkaProducer(bootstrap_servers=self._kafka.bootstrap_servers, acks="all")
        await self._start(consumer, dlq)
        log.info("worker_started", topic=self._kafka.topic, group=self._kafka.consumer_group)
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=200)
                if batches:
                    await self._process(consumer, dlq, batches)
        finally:
            await consumer.stop()
            await dlq.stop()
            await self._appliers.aclose()
            log.info("worker_stopped")

    async def _start(self, consumer: AIOKafkaConsumer, dlq: AIOKafkaProducer) -> None:
        """Wait for the broker: a worker started before Kafka just waits for it."""
        for client in (consumer, dlq):
            delay = 0.5
            while True:
                try:
                    await client.start()
                    break
                except KafkaError as exc:
                    log.warning("broker_unreachable", error=type(exc).__name__, retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_BACKOFF)

    async def _process(
        self,
        consumer: AIOKafkaConsumer,
        dlq: AIOKafkaProducer,
        batches: dict[TopicPartition, list[Record]],
    ) -> None:
        """Run the batch in one lane per tenant, then commit, per partition, every offset below
        the first record without an outcome (all of them unless asked to stop).

        A tenant's events run one after another, whatever their partition, so two events of
        one tenant never race to create the same department; tenants run side by side."""
        lanes: dict[str, list[tuple[Record, ContactEvent | SchemaError]]] = defaultdict(list)
        for records in batches.values():
            for record in records:
                try:
                    event: ContactEvent | SchemaError = decode(record.value)
                except SchemaError as exc:
                    event = exc
                tenant = event.tenant if isinstance(event, ContactEvent) else ""
                lanes[tenant].append((record, event))
        done: set[tuple[int, int]] = set()
        await asyncio.gather(*(self._lane(dlq, lane, done) for lane in lanes.values()))
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
        dlq: AIOKafkaProducer,
        lane: list[tuple[Record, ContactEvent | SchemaError]],
        done: set[tuple[int, int]],
    ) -> None:
        for record, event in lane:
            if not await self._handle(dlq, record, event):
                return  # stopping mid-retry: leave the offset uncommitted for the next owner
            done.add((record.partition, record.offset))

    async def _handle(
        self, dlq: AIOKafkaProducer, record: Record, event: ContactEvent | SchemaError
    ) -> bool:
        """Give the record an outcome; False only when asked to stop before it had one."""
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        with structlog.contextvars.bound_contextvars(record=origin):
            if isinstance(event, SchemaError):
                await self._dead_letter(dlq, record, origin, f"schema: {event}")
                return True
            applier = self._appliers.for_tenant(event.tenant)
            if applier is None:
                error = f"unknown tenant {event.tenant!r}"
                await self._dead_letter(dlq, record, origin, error)
                await self._record(event, origin, "dead_lettered", 1, Attempts(), 0.0, error)
                return True
            return await self._apply(dlq, record, event, applier, origin)

    async def _apply(
        self,
        dlq: AIOKafkaProducer,
        record: Record,
        event: ContactEvent,
        applier: TenantApplier,
        origin: str,
    ) -> bool:
        attempts, runs, delay = Attempts(), 0, 0.5
        started = time.perf_counter()
        while not self._stopping.is_set():
            runs += 1
            try:
                with recording(attempts):
                    ops = await applier.apply(event)
            except RetryLater as exc:
                wait = min(exc.retry_after or delay, _MAX_BACKOFF)
                attempts.notes.append(f"{exc}; event retried in {wait:.1f} s")
                log.warning("apply_retry", event_id=event.event_id, error=str(exc), wait=wait)
                await self._sleep(wait)
                delay = min(delay * 2, _MAX_BACKOFF)
            except DeadLetter as exc:
                await self._dead_letter(dlq, record, origin, str(exc))
                elapsed = time.perf_counter() - started
                await self._record(
                    event, origin, "dead_lettered", runs, attempts, elapsed, str(exc)
                )
                return True
            else:
                elapsed = time.perf_counter() - started
                outcome: Outcome = "applied" if ops.writes else "skipped"
                log.info(
                    "applied",
                    event_id=event.event_id,
                    tenant=event.tenant,
                    entity=event.entity,
                    entity_id=event.entity_id,
                    change=event.change,
                    writes=ops.writes,
                    retries=attempts.retries,
                )
                await self._record(
                    event, origin, outcome, runs, attempts, elapsed, None, ops.writes
                )
                return True
        return False

    async def _record(
        self,
        event: ContactEvent,
        origin: str,
        outcome: Outcome,
        runs: int,
        attempts: Attempts,
        seconds: float,
        error: str | None = None,
        operations: list[str] | None = None,
    ) -> None:
        if self._history is None:
            return
        entry = HistoryEntry(
            recorded_at=utc_iso(time.time()),
            tenant=event.tenant,
            vendor=event.vendor,
            entity=event.entity,
            entity_id=event.entity_id,
            change=event.change,
            event_id=event.event_id,
            outcome=outcome,
            attempts=runs,
            origin=origin,
            duration_ms=round(seconds * 1000, 3),
            retries=list(attempts.notes),
            operations=operations or [],
            error=error,
        )
        try:
            await self._history.record(entry)
        except Exception as exc:  # noqa: BLE001 - the history must never stop the sync itself
            log.error("history_write_failed", error=f"{type(exc).__name__}: {exc}")

    async def _dead_letter(
        self, dlq: AIOKafkaProducer, record: Record, origin: str, error: str
    ) -> None:
        headers = [(HEADER_ERROR, error.encode()), (HEADER_ORIGIN, origin.encode())]
        await dlq.send_and_wait(
            self._kafka.dlq_topic, record.value, key=record.key, headers=headers
        )
        log.error("dead_lettered", error=error)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
