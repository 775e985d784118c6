"""Consumer lag, per partition and in total, true on any Kafka-protocol broker.

lag = log end (the fetched high watermark) - the group's committed offset. A partition the
group never committed counts from the log start: the worker reads from the earliest offset,
so all of it is still to do. Lag in seconds is the age of the oldest event not yet done (the
record at the committed offset), 0 when there is none.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from schemas.config import KafkaSettings
from workers.kafka.offsets import committed_offsets, opened_topic, record_at


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    log_start: int
    log_end: int
    lag: int
    lag_seconds: float


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    partitions: list[PartitionLag]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def max_lag_seconds(self) -> float:
        return max((p.lag_seconds for p in self.partitions), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "topic": self.topic,
            "total_lag": self.total,
            "max_lag_seconds": self.max_lag_seconds,
            "partitions": [asdict(p) for p in self.partitions],
        }


LagStage = Literal["worker", "resolver", "mirror"]


def lag_targets(kafka: KafkaSettings, feed_enabled: bool) -> dict[LagStage, tuple[str, str]]:
    """Each stage's (topic, consumer group): the worker reads the directory feed when it is
    on, the raw topic otherwise."""
    worker_topic = kafka.directory_topic if feed_enabled else kafka.topic
    return {
        "worker": (worker_topic, kafka.consumer_group),
        "resolver": (kafka.topic, kafka.resolver_group),
        "mirror": (kafka.directory_topic, kafka.mirror_group),
    }


async def measure_lag(bootstrap: str, topic: str, group: str) -> GroupLag:
    async with opened_topic(bootstrap, topic) as (consumer, bounds):
        partitions = sorted(bounds, key=lambda tp: tp.partition)
        if not partitions:
            return GroupLag(group, topic, [])
        committed = await committed_offsets(bootstrap, group, partitions)
        now = time.time()
        rows = []
        for tp in partitions:
            start, end = bounds[tp]
            done = committed[tp]
            next_to_do = start if done is None else max(done, start)
            lag = max(0, end - next_to_do)
            age = 0.0
            if lag:
                oldest = await record_at(consumer, tp, next_to_do)
                if oldest is not None:
                    age = max(0.0, now - oldest.timestamp / 1000)
            rows.append(PartitionLag(topic, tp.partition, committed[tp], start, end, lag, age))
        return GroupLag(group, topic, rows)


def as_table(lag: GroupLag) -> str:
    headings = ("partition", "committed", "log end", "lag", "lag seconds")
    rows = [
        (
            str(p.partition),
            "-" if p.committed is None else str(p.committed),
            str(p.log_end),
            str(p.lag),
            f"{p.lag_seconds:.1f}",
        )
        for p in lag.partitions
    ]
    rows.append(("total", "", "", str(lag.total), f"{lag.max_lag_seconds:.1f}"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headings)]
    lines = [f"group {lag.group}  topic {lag.topic}"]
    lines.append("  ".join(h.rjust(w) for h, w in zip(headings, widths, strict=True)))
    lines.extend("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(lines)
