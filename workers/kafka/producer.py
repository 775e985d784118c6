"""The workers' one Kafka producer: dead letters, dead letters put back, the events a full sync
publishes (its re-reads) and DingTalk's recovered callbacks. acks=all, like the receiver's.

Idempotence stays off: Tansu rejects aiokafka's InitProducerId v0 (docs/brokers.md §2.2).
Duplicates are harmless anyway: event ids are deterministic and applying is idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final, Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.event import ContactEvent, encode
from schemas.topics import HEADER_TRACEPARENT

# How long one send may wait for the broker's ack before it counts as failed.
SEND_TIMEOUT_SECONDS: Final = 10.0
_MAX_BACKOFF: Final = 30.0
log = structlog.get_logger("orgstream.worker")

Headers = Sequence[tuple[str, bytes]]


class PublishFailed(Exception):
    """The broker did not take the record in time."""


class EventPublisher(Protocol):
    """Where a full sync and the failed-callback recovery put the events they make."""

    async def publish(self, events: Sequence[ContactEvent], traceparent: str) -> None:
        """Return once every event is acknowledged; otherwise raise `PublishFailed`."""
        ...


class Producer:
    """One aiokafka producer, connected on first use (or by `start`, which waits for the
    broker), publishing contact events to `events_topic` and raw records anywhere."""

    def __init__(
        self,
        bootstrap_servers: str,
        events_topic: str,
        timeout_seconds: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._events_topic = events_topic
        self._timeout = timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect, waiting for the broker: a worker started before Kafka just waits for it."""
        delay = 0.5
        while True:
            try:
                await self._connected()
                return
            except PublishFailed as exc:
                log.warning("broker_unreachable", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        """One record, acknowledged by the broker."""
        try:
            producer = await self._connected()
            async with asyncio.timeout(self._timeout):
                await producer.send_and_wait(topic, value, key=key, headers=list(headers))
        except (TimeoutError, KafkaError) as exc:
            raise PublishFailed(f"{topic}: {type(exc).__name__}") from exc

    async def send_all(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """(key, value) records, in order, all acknowledged before it returns."""
        try:
            producer = await self._connected()
            async with asyncio.timeout(self._timeout):
                pending = [await producer.send(topic, value, key=key) for key, value in records]
                await asyncio.gather(*pending)
        except (TimeoutError, KafkaError) as exc:
            raise PublishFailed(f"{topic}: {type(exc).__name__}") from exc

    async def publish(self, events: Sequence[ContactEvent], traceparent: str) -> None:
        """Contact events on the events topic, each under its entity's key; all acknowledged."""
        headers = [(HEADER_TRACEPARENT, traceparent.encode())]
        try:
            producer = await self._connected()
            async with asyncio.timeout(self._timeout):  # metadata and buffer waits included
                pending = [
                    await producer.send(self._events_topic, encode(e), key=e.key, headers=headers)
                    for e in events
                ]
                await asyncio.gather(*pending)
        except (TimeoutError, KafkaError) as exc:
            raise PublishFailed(f"{self._events_topic}: {type(exc).__name__}") from exc

    async def _connected(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=False
                )
                try:
                    await asyncio.wait_for(producer.start(), self._timeout)
                except (TimeoutError, KafkaError, OSError) as exc:
                    await producer.stop()
                    raise PublishFailed(f"broker unreachable: {type(exc).__name__}") from exc
                self._producer = producer
            return self._producer
