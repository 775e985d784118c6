"""Read-your-writes: right after a vendor write, the entity is read back from the vendor and
applied to the mirror and the directory index, as the directory feed would a moment later,
so the IdP's next GET sees what it wrote. The vendor's own callback for the write arrives
after that and changes nothing (the same record, a later version): the echo of our write,
not a change to push anywhere."""

from __future__ import annotations

import time

from schemas.config import TenantSettings
from schemas.record import DirectoryRecord, encode_record
from workers.directory.indexer import DirectoryIndexer
from workers.store.mirror import Mirror
from workers.vendors.records import RecordMaker
from workers.vendors.source import SourceDirectory


class Refresher:
    def __init__(
        self,
        tenant: TenantSettings,
        source: SourceDirectory,
        mirror: Mirror,
        indexer: DirectoryIndexer,
        exclude_fields: tuple[str, ...] = (),
    ) -> None:
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
        if await self._mirror.apply(record, encode_record(record)):
            await self._indexer.apply(record)


def _now_ms() -> int:
    return int(time.time() * 1000)
