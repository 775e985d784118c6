"""Publishing events durably: the receiver answers the vendor only after the broker acked.

`EventPublisher` is the seam; `KafkaEventPublisher` is the real one (acks=all), and
`MemoryEventPublisher` the in-process stand-in for unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.event import ContactEvent, encode
from schemas.topics import HEADER_TRACEPARENT


class PublishFailed(Exception):
    """The broker did not acknowledge in time; the vendor must retry."""


class EventPublisher(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, events: Sequence[ContactEvent], traceparent: str) -> None:
        """Return only once every event is acknowledged; otherwise raise `PublishFailed`."""
        ...

    async def ready(self) -> bool: ...


class KafkaEventPublisher:
    """aiokafka producer with acks=all. Connects lazily, so the receiver starts without a broker.

    Idempotence stays off: Tansu rejects aiokafka's InitProducerId v0 (docs/brokers.md §2.2).
    Duplicates are harmless anyway, because event ids are deterministic.
    """

    def __init__(self, bootstrap_servers: str, topic: str, timeout_seconds: float) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._timeout = timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        # Not ready yet is fine: /readyz says so and publish() retries the connection.
        with contextlib.suppress(PublishFailed):
            await self._connected()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, events: Sequence[ContactEvent], traceparent: str) -> None:
        try:
            async with asyncio.timeout(self._timeout):  # no task of its own, unlike wait_for
                await self._send_all(events, traceparent)
        except (TimeoutError, KafkaError) as exc:
            raise PublishFailed(type(exc).__name__) from exc

    async def ready(self) -> bool:
        try:
            producer = await self._connected()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), self._timeout)
        except (PublishFailed, TimeoutError, KafkaError):
            return False
        return True

    async def _send_all(self, events: Sequence[ContactEvent], traceparent: str) -> None:
        producer = await self._connected()
        headers = [(HEADER_TRACEPARENT, traceparent.encode())]
        pending = [
            await producer.send(self._topic, encode(e), key=e.key, headers=headers) for e in events
        ]
        await asyncio.gather(*pending)

    async def _connected(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                # request_timeout_ms bounds how long a batch may wait: one not acked within the
                # vendor's window expires instead of reaching the topic after we answered 503.
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    acks="all",
                    enable_idempotence=False,
                    linger_ms=0,
                    request_timeout_ms=int(self._timeout * 1000),
                )
                try:
                    await asyncio.wait_for(producer.start(), self._timeout)
                except (TimeoutError, KafkaError, OSError) as exc:
                    await producer.stop()
                    raise PublishFailed("broker unreachable") from exc
                self._producer = producer
            return self._producer


class MemoryEventPublisher:
    """Keeps published events in a list; `fail` makes the next publishes raise."""

    def __init__(self) -> None:
        self.published: list[ContactEvent] = []
        self.fail = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, events: Sequence[ContactEvent], traceparent: str) -> None:
        if self.fail:
            raise PublishFailed("memory publisher set to fail")
        self.published.extend(events)

    async def ready(self) -> bool:
        return not self.fail
