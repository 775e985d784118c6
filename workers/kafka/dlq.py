"""The dead-letter topics as an operator works with them: list what failed and why, and put
chosen records back once the cause is fixed (`orgstream dlq`, the console).

Every stage has one: the worker's `kafka.dlq_topic` (events), and with the directory feed on
the resolver's (hints), the mirror's and the SCIM sink's (records), `<topic>.<group>.dlq`. A
dead letter's position is `partition:offset` on `kafka.dlq_topic` and `topic:partition:offset`
on the others.

An event or a hint goes back as it was, with its key, onto the main topic: it lands on its
entity's partition and goes through the normal, idempotent path. A record does
not go back onto the compacted directory topic (an older record there would outlive a newer
one at the next compaction): what goes back is a hint about its entity, so the resolver reads
the vendor again and the sink gets the entity's state as it is now.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from aiokafka import ConsumerRecord

from schemas.config import KafkaSettings
from schemas.event import (
    AttributeValue,
    ContactEvent,
    SchemaError,
    decode,
    encode,
    make_event_id,
    utc_iso,
)
from schemas.record import RecordError, decode_record
from schemas.topics import (
    HEADER_ERROR,
    HEADER_ORIGIN,
    HEADER_REDRIVEN_FROM,
    dead_letter_topic,
    parse_key,
)
from schemas.types import Entity, Vendor
from workers.kafka.offsets import read_all
from workers.kafka.producer import Producer


@dataclass(frozen=True)
class DeadLetterRecord:
    position: str  # what `--record` names: "<partition>:<offset>", or "<topic>:<p>:<o>"
    dead_lettered_at: str
    error: str
    origin: str  # topic/partition/offset it failed at
    tenant: str
    entity: str
    entity_id: str
    change: str  # the event's change; "record" for a directory record
    key: bytes | None
    value: bytes
    topic: str = ""  # the dead-letter topic it is on
    vendor: str = ""  # a record's vendor, for the hint that re-drives it
    renamed_to: str | None = None  # a record of a userid renamed at the vendor
    stuck: bool = False  # a directory record no decoder reads: nothing can re-drive it

    def summary(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["key"], fields["value"], fields["vendor"], fields["renamed_to"]
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


def dead_letter_topics(kafka: KafkaSettings, feed_enabled: bool) -> tuple[str, ...]:
    """The worker's, then (feed on) the resolver's, the mirror's and the SCIM sink's."""
    if not feed_enabled:
        return (kafka.dlq_topic,)
    return (
        kafka.dlq_topic,
        dead_letter_topic(kafka.topic, kafka.resolver_group),
        dead_letter_topic(kafka.directory_topic, kafka.mirror_group),
        dead_letter_topic(kafka.directory_topic, kafka.consumer_group),
    )


async def dead_letters(kafka: KafkaSettings, feed_enabled: bool = False) -> list[DeadLetterRecord]:
    found = []
    for topic in dead_letter_topics(kafka, feed_enabled):
        main = topic == kafka.dlq_topic
        records = topic.startswith(f"{kafka.directory_topic}.")
        found += [
            _dead_letter(r, main, records) for r in await read_all(kafka.bootstrap_servers, topic)
        ]
    return found


async def redrive(kafka: KafkaSettings, records: Sequence[DeadLetterRecord]) -> int:
    """Put each back onto the main topic (acks=all): an event or hint as it was, a record as a
    fresh hint about its entity; one that is `stuck` is left where it is. Return how many
    went back."""
    producer = Producer(kafka.bootstrap_servers, kafka.topic)
    sent = 0
    try:
        for record in records:
            if record.stuck:
                continue
            where = ":".join(record.position.split(":")[-2:])
            headers = [(HEADER_REDRIVEN_FROM, f"{record.topic}/{where}".encode())]
            sent += 1
            if record.change == "record":
                hint = _hint_for(record)
                await producer.send(kafka.topic, encode(hint), hint.key, headers)
            else:
                await producer.send(kafka.topic, record.value, record.key, headers)
    finally:
        await producer.stop()
    return sent


def _hint_for(record: DeadLetterRecord) -> ContactEvent:
    """A hint that brings the entity to the vendor's state, as the full sync asks for it; a
    rename stays a rename (the old userid retired, not deprovisioned as a leaver)."""
    now = utc_iso(time.time())
    vendor = cast(Vendor, record.vendor)
    identity = f"redrive:{record.topic}:{record.position}:{now}".encode()
    renamed: dict[str, AttributeValue] = (
        {"userid": record.entity_id, "new_userid": record.renamed_to} if record.renamed_to else {}
    )
    return ContactEvent(
        event_id=make_event_id(vendor, record.tenant, identity, 0),
        tenant=record.tenant,
        vendor=vendor,
        entity=cast(Entity, record.entity),
        entity_id=record.entity_id,
        change="renamed" if renamed else "updated",
        occurred_at=now,
        received_at=now,
        raw="",
        attributes=renamed,
    )


def _dead_letter(record: ConsumerRecord[Any, Any], main: bool, records: bool) -> DeadLetterRecord:
    """`records`: the topic holds directory records (the mirror's or the sink's)."""
    headers = {name: value.decode("utf-8", "replace") for name, value in record.headers}
    tenant = entity = entity_id = change = vendor = ""
    renamed_to = None
    try:
        event = decode(record.value)
    except SchemaError:
        try:
            kept = decode_record(record.value)
        except RecordError:
            # A poison record: listed with its error, and what its key says it was about.
            if record.key and record.key.count(b":") >= 2:
                tenant, entity, entity_id = parse_key(record.key)
        else:
            tenant, entity, entity_id, change = kept.tenant, kept.kind, kept.id, "record"
            vendor, renamed_to = kept.vendor, kept.renamed_to
    else:
        tenant, entity, entity_id, change = (
            event.tenant,
            event.entity,
            event.entity_id,
            event.change,
        )
    where = f"{record.partition}:{record.offset}"
    return DeadLetterRecord(
        position=where if main else f"{record.topic}:{where}",
        dead_lettered_at=utc_iso(record.timestamp / 1000),
        error=headers.get(HEADER_ERROR, ""),
        origin=headers.get(HEADER_ORIGIN, ""),
        tenant=tenant,
        entity=entity,
        entity_id=entity_id,
        change=change,
        key=record.key,
        value=record.value,
        topic=record.topic,
        vendor=vendor,
        renamed_to=renamed_to,
        stuck=records and change != "record",
    )
