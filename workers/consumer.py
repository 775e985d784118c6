"""The worker loop: consume, apply, and commit only once each event has an outcome.

Outcomes: applied; retried in place while the failure is transient (the partition waits, nothing
is committed); dead-lettered with the error in the record headers when retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from schemas.config import KafkaSettings
from schemas.event import SchemaError, decode
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN
from workers.errors import DeadLetter, RetryLater
from workers.tenants import Appliers

_MAX_BACKOFF: Final = 30.0
log = structlog.get_logger("orgstream.worker")


class Worker:
    def __init__(self, kafka: KafkaSettings, appliers: Appliers) -> None:
        self._kafka = kafka
        self._appliers = appliers
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
                for partition, records in batches.items():
                    await self._process(consumer, dlq, partition, records)
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
        partition: TopicPartition,
        records: list[ConsumerRecord[Any, Any]],
    ) -> None:
        for record in records:
            if not await self._handle(dlq, record):
                return  # stopping mid-retry: leave the offset uncommitted for the next owner
            await consumer.commit({partition: record.offset + 1})

    async def _handle(self, dlq: AIOKafkaProducer, record: ConsumerRecord[Any, Any]) -> bool:
        """Give the record an outcome; False only when asked to stop before it had one."""
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        with structlog.contextvars.bound_contextvars(record=origin):
            try:
                event = decode(record.value)
            except SchemaError as exc:
                await self._dead_letter(dlq, record, f"schema: {exc}")
                return True
            applier = self._appliers.for_tenant(event.tenant)
            if applier is None:
                await self._dead_letter(dlq, record, f"unknown tenant {event.tenant!r}")
                return True
            delay = 0.5
            while not self._stopping.is_set():
                try:
                    ops = await applier.apply(event)
                except RetryLater as exc:
                    wait = min(exc.retry_after or delay, _MAX_BACKOFF)
                    log.warning("apply_retry", event_id=event.event_id, error=str(exc), wait=wait)
                    await self._sleep(wait)
                    delay = min(delay * 2, _MAX_BACKOFF)
                except DeadLetter as exc:
                    await self._dead_letter(dlq, record, str(exc))
                    return True
                else:
                    log.info(
                        "applied",
                        event_id=event.event_id,
                        tenant=event.tenant,
                        entity=event.entity,
                        entity_id=event.entity_id,
                        change=event.change,
                        writes=ops.writes,
                    )
                    return True
            return False

    async def _dead_letter(
        self, dlq: AIOKafkaProducer, record: ConsumerRecord[Any, Any], error: str
    ) -> None:
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        headers = [(HEADER_ERROR, error.encode()), (HEADER_ORIGIN, origin.encode())]
        await dlq.send_and_wait(
            self._kafka.dlq_topic, record.value, key=record.key, headers=headers
        )
        log.error("dead_lettered", error=error)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
