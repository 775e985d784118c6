"""Offsets that are right on every Kafka-protocol broker (docs/brokers.md §3).

- The log end is the high watermark a Fetch reports. ListOffsets "latest" (`end_offsets`) is
  low on Tansu by the size of the last batch, so it is only used to find a record near the end
  to fetch.
- A time is turned into an offset by reading record timestamps (a binary search, one record
  per probe), never with `offsets_for_times`, which answers 0 on Tansu.
- Committed offsets are read for explicit partitions only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

_FETCH_WAIT_MS: Final = 200
_FETCH_ATTEMPTS: Final = 50  # x 200 ms: a broker that answers nothing in 10 s is down


def reader(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer with no group, for reading by offset."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )


Bounds = dict[TopicPartition, tuple[int, int]]  # (log start, log end) per partition


@contextlib.asynccontextmanager
async def opened_topic(
    bootstrap: str, topic: str
) -> AsyncIterator[tuple[AIOKafkaConsumer, Bounds]]:
    """A group-less consumer with every partition of `topic` assigned, and each partition's
    bounds (none for a topic with no partitions); stopped on the way out."""
    consumer = reader(bootstrap)
    try:
        await consumer.start()  # a broker that cannot be reached: stopped all the same
        partitions = await topic_partitions(consumer, topic)
        bounds: Bounds = {}
        if partitions:
            consumer.assign(partitions)
            bounds = await log_bounds(consumer, partitions)
        yield consumer, bounds
    finally:
        await consumer.stop()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def log_bounds(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, tuple[int, int]]:
    """(log start, log end) per partition, the end being the fetched high watermark. The
    consumer must have the partitions assigned."""
    starts = await consumer.beginning_offsets(list(partitions))
    rough_ends = await consumer.end_offsets(list(partitions))  # at or below the true end
    for tp in partitions:
        consumer.seek(tp, max(rough_ends[tp] - 1, starts[tp]))
    ends: dict[TopicPartition, int] = {}
    for _ in range(_FETCH_ATTEMPTS):
        waiting = [tp for tp in partitions if tp not in ends]
        if not waiting:
            break
        await consumer.getmany(*waiting, timeout_ms=_FETCH_WAIT_MS, max_records=1)
        for tp in waiting:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                ends[tp] = highwater
    missing = [f"{tp.topic}/{tp.partition}" for tp in partitions if tp not in ends]
    if missing:
        raise TimeoutError(f"no high watermark from the broker for {', '.join(missing)}")
    return {tp: (starts[tp], ends[tp]) for tp in partitions}


async def record_at(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int
) -> ConsumerRecord[Any, Any] | None:
    """The first record at or after `offset` (None past the end)."""
    consumer.seek(tp, offset)
    for _ in range(_FETCH_ATTEMPTS):
        batch = await consumer.getmany(tp, timeout_ms=_FETCH_WAIT_MS, max_records=1)
        if batch.get(tp):
            return batch[tp][0]
        highwater = consumer.highwater(tp)
        if highwater is not None and offset >= highwater:
            return None
    raise TimeoutError(f"no answer from the broker for {tp.topic}/{tp.partition}@{offset}")


async def offset_for_time(
    consumer: AIOKafkaConsumer, tp: TopicPartition, timestamp_ms: int, start: int, end: int
) -> int:
    """The first offset in [start, end) whose record is at or after `timestamp_ms` (`end` if
    none): a binary search over record timestamps, exact when they do not go backwards within
    the partition (the producer's CreateTime, as orgstream's receiver writes it)."""
    low, high = start, end
    while low < high:
        middle = (low + high) // 2
        record = await record_at(consumer, tp, middle)
        if record is None:
            high = middle
        elif record.timestamp < timestamp_ms:
            low = record.offset + 1
        else:
            high = min(middle, record.offset)
    return low


async def committed_offsets(
    bootstrap: str, group: str, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset per partition; None where it never committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Always name the partitions: Tansu's reply for "all" is malformed.
        answer = await admin.list_consumer_group_offsets(group, partitions=list(partitions))
    finally:
        await admin.close()
    committed: dict[TopicPartition, int | None] = {tp: None for tp in partitions}
    for tp, meta in answer.items():
        if tp in committed and meta.offset >= 0:
            committed[tp] = meta.offset
    return committed


async def read_range(
    consumer: AIOKafkaConsumer,
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> list[ConsumerRecord[Any, Any]]:
    """Every record from `starts` up to (not including) `ends`, per partition, ordered by
    partition and offset. The consumer must have the partitions assigned."""
    records: list[ConsumerRecord[Any, Any]] = []
    pending = [tp for tp in starts if starts[tp] < ends[tp]]
    for tp in pending:
        consumer.seek(tp, starts[tp])
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
        for tp, batch in batches.items():
            records.extend(r for r in batch if r.offset < ends[tp])
        pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def read_since(
    bootstrap: str, topic: str, since: Mapping[TopicPartition, int]
) -> list[ConsumerRecord[Any, Any]]:
    """Every record on `topic` from `since` (a partition it does not name: from its start) to
    the log end now, ordered by partition and offset (bound the wait with `asyncio.timeout`)."""
    async with opened_topic(bootstrap, topic) as (consumer, bounds):
        starts = {tp: since.get(tp, start) for tp, (start, _) in bounds.items()}
        return await read_range(consumer, starts, {tp: end for tp, (_, end) in bounds.items()})


async def read_all(bootstrap: str, topic: str) -> list[ConsumerRecord[Any, Any]]:
    """Every record now on `topic`, ordered by partition and offset (bound the wait with
    `asyncio.timeout` where a broker may be unreachable)."""
    async with opened_topic(bootstrap, topic) as (consumer, bounds):
        starts = {tp: start for tp, (start, _) in bounds.items()}
        return await read_range(consumer, starts, {tp: end for tp, (_, end) in bounds.items()})
