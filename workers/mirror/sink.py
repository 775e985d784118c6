"""The mirror's sink: records from the directory feed into the store. It never calls the
vendor; a record that cannot be read goes to the group's own dead-letter topic."""

from __future__ import annotations

import structlog

from schemas.record import RecordError, decode_record
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN
from workers.kafka.batches import Batch
from workers.kafka.producer import Producer
from workers.store.mirror import Mirror

log = structlog.get_logger("orgstream.mirror")


class MirrorSink:
    def __init__(self, mirror: Mirror, producer: Producer, dlq_topic: str) -> None:
        self._mirror = mirror
        self._producer = producer
        self._dlq_topic = dlq_topic

    async def handle(self, batch: Batch) -> None:
        applied = 0
        for record in batch:
            try:
                decoded = decode_record(record.value)
            except RecordError as exc:
                origin = f"{record.topic}/{record.partition}/{record.offset}"
                headers = [(HEADER_ERROR, str(exc).encode()), (HEADER_ORIGIN, origin.encode())]
                await self._producer.send(self._dlq_topic, record.value, record.key, headers)
                log.error("dead_lettered", stage="mirror", error=str(exc))
                continue
            applied += await self._mirror.apply(decoded, record.value)
        log.debug("mirrored", records=len(batch), applied=applied)
