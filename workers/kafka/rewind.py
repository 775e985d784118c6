"""`orgstream replay --rewind-group TIME`: move the worker group's committed offsets back to a
time, so the workers reprocess everything since then when they start again.

Done from inside the group (Tansu refuses offset commits from outside it while it still lists
a member): join as the only member, which holds only while the workers are stopped, take every
partition, commit the offset of the first record at or after the time, leave.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.config import KafkaSettings
from workers.kafka.offsets import committed_offsets, offset_for_time, opened_topic


class WorkersStillRunning(RuntimeError):
    pass


@dataclass(frozen=True)
class Rewound:
    partition: int
    before: int | None
    after: int


async def rewind_group(kafka: KafkaSettings, moment: datetime) -> list[Rewound]:
    targets = await _offsets_at(kafka, moment)
    before = await committed_offsets(kafka.bootstrap_servers, kafka.consumer_group, list(targets))
    member = AIOKafkaConsumer(
        kafka.topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=kafka.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=max(300, kafka.session_timeout_ms // 4),
    )
    await member.start()
    try:
        # A lone member gets every partition; with a worker still in the group it never does.
        waited = 3 * kafka.session_timeout_ms / 1000
        try:
            async with asyncio.timeout(waited):
                while member.assignment() != set(targets):
                    await member.getmany(timeout_ms=200, max_records=1)
        except TimeoutError as exc:
            raise WorkersStillRunning(
                f"group {kafka.consumer_group} still has other members after {waited:.0f} s: "
                "stop the workers first"
            ) from exc
        await member.commit(dict(targets))
    finally:
        await member.stop()
    return [Rewound(tp.partition, before[tp], targets[tp]) for tp in sorted(targets)]


async def _offsets_at(kafka: KafkaSettings, moment: datetime) -> dict[TopicPartition, int]:
    async with opened_topic(kafka.bootstrap_servers, kafka.topic) as (consumer, bounds):
        at_ms = int(moment.timestamp() * 1000)
        return {tp: await offset_for_time(consumer, tp, at_ms, *bounds[tp]) for tp in bounds}
