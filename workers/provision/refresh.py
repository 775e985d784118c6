"""Read-your-writes: right after a vendor write, the entity is read back from the vendor and
applied to the mirror and the directory index, as the directory feed would a moment later,
so the IdP's next GET sees what it wrote. The vendor's own callback for the write arrives
after that and changes nothing (the same record, a later version): the echo of our write,
not a change to push anywhere.

With the feed on, the record read back is also published to `orgstream.directory`, as the
resolver publishes what it reads: the SCIM sinks and other mirrors follow a provisioned change
at once, and whether or not the vendor calls back for writes made through its API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import structlog

from schemas.config import TenantSettings
from schemas.record import DirectoryRecord, encode_record
from workers.directory.indexer import DirectoryIndexer
from workers.kafka.producer import PublishFailed
from workers.store.mirror import Mirror
from workers.vendors.records import RecordMaker
from workers.vendors.source import SourceDirectory

log = structlog.get_logger("orgstream.provisioning")


class RecordFeed(Protocol):
    async def send_all(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None: ...


class Refresher:
    def __init__(
        self,
        tenant: TenantSettings,
        source: SourceDirectory,
        mirror: Mirror,
        indexer: DirectoryIndexer,
        exclude_fields: tuple[str, ...] = (),
        feed: tuple[RecordFeed, str] | None = None,
    ) -> None:
        """`feed`: where to publish what is read back (a producer and the directory topic)."""
        self._feed = feed
        self._source = source
        self._mirror = mirror
        self._indexer = indexer
        self._maker = RecordMaker(tenant.id, tenant.vendor, "provisioning", exclude_fields)

    async def user(self, userid: str) -> None:
        found = await self._source.get_user(userid)
        version = _now_ms()
        if found is None:
            await self._apply(self._maker.deletion("user", userid, version, ()))
        else:
            await self._apply(self._maker.user(found, version, ()))

    async def department(self, department_id: str) -> None:
        found = await self._source.get_department(department_id)
        version = _now_ms()
        if found is None:
            await self._apply(self._maker.deletion("department", department_id, version, ()))
        else:
            await self._apply(self._maker.department(found, version, ()))

    async def reindex_user(self, userid: str) -> None:
        """What the IdP alone holds changed: the index shows it, the vendor is not asked."""
        kept = await self._mirror.record(self._maker.tenant, "user", userid)
        if kept is not None:
            await self._indexer.apply(kept, repair=True)

    async def reindex_department(self, department_id: str) -> None:
        kept = await self._mirror.record(self._maker.tenant, "department", department_id)
        if kept is not None:
            await self._indexer.apply(kept, repair=True)

    async def aclose(self) -> None:
        await self._source.aclose()

    async def _apply(self, record: DirectoryRecord) -> None:
        payload = encode_record(record)
        if await self._mirror.apply(record, payload):
            await self._indexer.apply(record)
        if self._feed is None:
            return
        producer, topic = self._feed
        try:
            await producer.send_all(topic, [(record.key, payload)])
        except PublishFailed as exc:  # the vendor has the write; its callback or a sync follows
            log.warning("provisioned_record_not_published", error=str(exc), entity=record.id)


def _now_ms() -> int:
    return int(time.time() * 1000)
