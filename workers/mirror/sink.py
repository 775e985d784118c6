"""The mirror's sink: records from the directory feed into the store. It never calls the
vendor; a record that cannot be read goes to the group's own dead-letter topic. Each record
also updates the directory server's index (workers/directory/indexer.py)."""

from __future__ import annotations

import structlog

from schemas.record import DirectoryRecord, RecordError, decode_record
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN
from workers.directory.indexer import DirectoryIndexer
from workers.kafka.batches import Batch
from workers.kafka.producer import Producer
from workers.store.mirror import Mirror

log = structlog.get_logger("orgstream.mirror")


class MirrorSink:
    def __init__(
        self,
        mirror: Mirror,
        producer: Producer,
        dlq_topic: str,
        indexer: DirectoryIndexer | None = None,
    ) -> None:
        self._mirror = mirror
        self._indexer = indexer
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
            kept = await self._mirror.apply(decoded, record.value)
            applied += kept
            if self._indexer is not None and kept:
                await self._indexer.apply(decoded)
            elif self._indexer is not None and await self._is_current(decoded):
                # Delivered again, so a crash may have come before the index caught up.
                await self._indexer.apply(decoded, repair=True)
        log.debug("mirrored", records=len(batch), applied=applied)

    async def _is_current(self, record: DirectoryRecord) -> bool:
        kept = await self._mirror.version(record.tenant, record.kind, record.id)
        return kept == record.version
