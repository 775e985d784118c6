"""A stage's consumer: read a topic batch by batch in a group of its own, hand each batch to
the stage, commit once the stage is done with it. A failing batch is not committed: it is
tried again after a pause, so nothing is lost and nothing is skipped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeAlias

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from workers.kafka.offsets import committed_offsets

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
        seed_group: str | None = None,
    ) -> None:
        """`seed_group`: where a partition this group never committed starts, when that
        group has committed it (upgrading in place: the resolver takes over the hint topic
        where the worker's group left it, instead of resolving all of history again)."""
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._group = group
        self._handle = handle
        self._session_timeout_ms = session_timeout_ms
        self._max_records = max_records
        self._seed_group = seed_group
        # Per partition, the next offset to handle: a seeded start, then past each handled batch.
        self._floors: dict[Any, int] = {}
        self._seeded = asyncio.Event()  # the current assignment's seeds (and floors) are set
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=max(300, self._session_timeout_ms // 4),
        )
        await start_consumer(consumer)
        seeding = _Seeding(consumer, self._bootstrap, self._seed_group, self._floors, self._seeded)
        consumer.subscribe([self._topic], listener=seeding)
        log.info("stage_started", topic=self._topic, group=self._group)
        try:
            while not self._stopping.is_set():
                fetched = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
                if fetched:  # fetched before a seek took hold? the floors drop it
                    await self._seeded.wait()
                batch = [
                    record
                    for partition, records in fetched.items()
                    for record in records
                    if record.offset >= self._floors.get(partition, 0)
                ]
                if batch and await self._handled(batch):
                    done: dict[Any, int] = {}
                    for record in batch:
                        partition = TopicPartition(record.topic, record.partition)
                        done[partition] = max(done.get(partition, 0), record.offset + 1)
                    self._floors.update(done)  # what is fetched again after a seek is skipped
                    try:
                        await consumer.commit(done)
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


class _Seeding(ConsumerRebalanceListener):  # type: ignore[misc]
    """On each assignment, a partition the group never committed starts where the seed group
    committed it (if it did); otherwise the consumer's own reset applies. What was fetched
    before the seek took hold is dropped by its floor."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        bootstrap: str,
        seed_group: str | None,
        floors: dict[Any, int],
        seeded: asyncio.Event,
    ) -> None:
        self._consumer = consumer
        self._bootstrap = bootstrap
        self._seed_group = seed_group
        self._floors = floors
        self._seeded = seeded

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._seeded.clear()
        for partition in revoked:  # its next owner starts from what is committed
            self._floors.pop(partition, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self._seed(assigned)
        finally:
            self._seeded.set()

    async def _seed(self, assigned: Any) -> None:
        if self._seed_group is None or not assigned:
            return
        fresh = [tp for tp in assigned if await self._consumer.committed(tp) is None]
        if not fresh:
            return
        seeds = await committed_offsets(self._bootstrap, self._seed_group, fresh)
        for tp, offset in seeds.items():
            if offset is not None:
                self._consumer.seek(tp, offset)
                self._floors[tp] = offset
                # Committed at once: a quiet partition is not seeded again, and a seed group
                # whose offsets expire later changes nothing.
                await self._consumer.commit({tp: offset})
                log.info(
                    "stage_seeded", partition=tp.partition, offset=offset, seed=self._seed_group
                )


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
