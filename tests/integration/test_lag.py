"""`orgstream lag` on Tansu and on noida-db: exactly the events not yet done, per partition and
in total, though Tansu's ListOffsets "latest" is low whenever a batch holds several records."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.integration.conftest import Broker, NoidaBroker, unique_topic
from workers.dev import devstack

pytestmark = pytest.mark.integration

PARTITIONS = 3


async def produce_in_batches(bootstrap: str, topic: str, count: int) -> Counter[int]:
    """`count` events sent in multi-record batches (the case Tansu's end offsets get wrong);
    how many landed on each partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic, b"{}", key=f"user:{i}".encode()) for i in range(count)]
        await producer.flush()
        landed: Counter[int] = Counter()
        for future in sent:
            landed[(await future).partition] += 1
        return landed
    finally:
        await producer.stop()


async def commit_as_group_member(
    bootstrap: str, topic: str, group: str, offsets: dict[int, int]
) -> None:
    """Commit from inside the group, as the worker does (an outsider's commit is refused by
    Tansu while a stale member is listed)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while len(consumer.assignment()) < PARTITIONS:
                await consumer.getmany(timeout_ms=200, max_records=1)
        await consumer.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
    finally:
        await consumer.stop()


def orgstream_lag(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*devstack.orgstream_command(), "lag", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=devstack.child_environment(),
    )


async def test_lag_is_exactly_what_the_group_has_not_done(
    any_broker: Broker | NoidaBroker, tmp_path: Path
) -> None:
    topic, group = unique_topic(), f"lag-{unique_topic()}"
    await devstack.create_topics(any_broker.bootstrap, [topic], partitions=PARTITIONS)
    per_partition = await produce_in_batches(any_broker.bootstrap, topic, 300)
    assert len(per_partition) == PARTITIONS
    done = {p: n // 3 for p, n in per_partition.items()}  # M = a third of each partition
    done[0] = 0  # and nothing at all of partition 0
    await commit_as_group_member(any_broker.bootstrap, topic, group, done)
    config = tmp_path / "orgstream.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{any_broker.bootstrap}"\ntopic = "{topic}"\n'
        f'consumer_group = "{group}"\n',
        encoding="utf-8",
    )

    measured = orgstream_lag(config, "--json")
    assert measured.returncode == 0, measured.stderr
    report = json.loads(measured.stdout)
    lags = {p["partition"]: p["lag"] for p in report["partitions"]}
    assert lags == {p: per_partition[p] - done[p] for p in per_partition}
    assert report["total_lag"] == 300 - sum(done.values())
    assert {p["partition"]: p["log_end"] for p in report["partitions"]} == dict(per_partition)
    assert report["max_lag_seconds"] >= 0
    assert orgstream_lag(config, "--fail-over", "10").returncode == 1

    await commit_as_group_member(any_broker.bootstrap, topic, group, dict(per_partition))
    caught_up = json.loads(orgstream_lag(config, "--json").stdout)
    assert caught_up["total_lag"] == 0
    assert caught_up["max_lag_seconds"] == 0
    table = orgstream_lag(config, "--fail-over", "0")
    assert table.returncode == 0
    assert "total" in table.stdout
