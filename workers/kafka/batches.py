"""A stage's consumer: read a topic batch by batch in a group of its own, hand each batch to
the stage, commit once the stage is done with it. A failing batch is not committed: it is
tried again after a pause, so nothing is lost and nothing is skipped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeAlias

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError

Record: TypeAlias = "ConsumerRecord[Any, Any]"
Batch = Sequence[Record]
_MAX_BACKOFF: Final = 30.0
log = structlog.get_logger("orgstream.worker")


class BatchConsumer:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group: str,
        handle: Callable[[Batch], Awaitable[None]],
        session_timeout_ms: int = 10_000,
        max_records: int = 500,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._group = group
        self._handle = handle
        self._session_timeout_ms = session_timeout_ms
        self._max_records = max_records
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self._topic,
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=max(300, self._session_timeout_ms // 4),
        )
        await start_consumer(consumer)
        log.info("stage_started", topic=self._topic, group=self._group)
        try:
            while not self._stopping.is_set():
                fetched = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
                batch = [record for records in fetched.values() for record in records]
                if batch and await self._handled(batch):
                    try:
                        await consumer.commit()
                    except KafkaError as exc:  # a rebalance: the next owner does it again
                        log.warning(
                            "stage_commit_failed", group=self._group, error=type(exc).__name__
                        )
        finally:
            await consumer.stop()

    async def run_forever(self) -> None:
        """Beside the worker's own consumer, until cancelled."""
        await self.run()

    async def _handled(self, batch: Batch) -> bool:
        """Hand the batch over until it is done; False when asked to stop first."""
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self._handle(batch)
                return True
            except Exception as exc:  # noqa: BLE001 - the batch is kept and tried again
                error = f"{type(exc).__name__}: {exc}"
                log.error("stage_batch_failed", group=self._group, error=error, retry_in=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, _MAX_BACKOFF)
        return False


async def start_consumer(consumer: AIOKafkaConsumer) -> None:
    """Wait for the broker: a consumer started before Kafka just waits for it."""
    delay = 0.5
    while True:
        try:
            await consumer.start()
            return
        except KafkaError as exc:
            log.warning("broker_unreachable", error=type(exc).__name__, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)
