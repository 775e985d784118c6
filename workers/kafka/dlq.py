"""The dead-letter topic as an operator works with it: list what failed and why, and put
chosen records back on the main topic once the cause is fixed (`orgstream dlq`).

A redriven record is the original value with its original key, so it lands on its entity's
partition and goes through the normal, idempotent apply path; redriving twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import ConsumerRecord

from schemas.config import KafkaSettings
from schemas.event import SchemaError, decode, utc_iso
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN, HEADER_REDRIVEN_FROM, parse_key
from workers.kafka.offsets import read_all
from workers.kafka.producer import Producer


@dataclass(frozen=True)
class DeadLetterRecord:
    position: str  # "<partition>:<offset>" on the DLQ, what `--record` names
    dead_lettered_at: str
    error: str
    origin: str  # topic/partition/offset it failed at
    tenant: str
    entity: str
    entity_id: str
    change: str
    key: bytes | None
    value: bytes

    def summary(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["key"], fields["value"]
        return fields


@dataclass(frozen=True)
class Selection:
    """Which dead letters to act on; nothing is chosen unless asked for."""

    positions: tuple[str, ...] = ()
    tenant: str | None = None
    error_contains: str | None = None
    everything: bool = False

    def chooses(self, record: DeadLetterRecord) -> bool:
        if self.positions and record.position not in self.positions:
            return False
        if self.tenant is not None and record.tenant != self.tenant:
            return False
        if self.error_contains is not None and self.error_contains not in record.error:
            return False
        return bool(self.everything or self.positions or self.tenant or self.error_contains)


async def dead_letters(kafka: KafkaSettings) -> list[DeadLetterRecord]:
    return [_dead_letter(r) for r in await read_all(kafka.bootstrap_servers, kafka.dlq_topic)]


async def redrive(kafka: KafkaSettings, records: Sequence[DeadLetterRecord]) -> int:
    """Produce each record back onto the main topic (acks=all); return how many."""
    producer = Producer(kafka.bootstrap_servers, kafka.topic)
    try:
        for record in records:
            headers = [(HEADER_REDRIVEN_FROM, f"{kafka.dlq_topic}/{record.position}".encode())]
            await producer.send(kafka.topic, record.value, record.key, headers)
    finally:
        await producer.stop()
    return len(records)


def _dead_letter(record: ConsumerRecord[Any, Any]) -> DeadLetterRecord:
    headers = {name: value.decode("utf-8", "replace") for name, value in record.headers}
    tenant = entity = entity_id = change = ""
    try:
        event = decode(record.value)
    except SchemaError:
        # A poison record: listed with its error, and what its key says it was about.
        if record.key and record.key.count(b":") >= 2:
            tenant, entity, entity_id = parse_key(record.key)
    else:
        tenant, entity, entity_id, change = (
            event.tenant,
            event.entity,
            event.entity_id,
            event.change,
        )
    return DeadLetterRecord(
        position=f"{record.partition}:{record.offset}",
        dead_lettered_at=utc_iso(record.timestamp / 1000),
        error=headers.get(HEADER_ERROR, ""),
        origin=headers.get(HEADER_ORIGIN, ""),
        tenant=tenant,
        entity=entity,
        entity_id=entity_id,
        change=change,
        key=record.key,
        value=record.value,
    )
