"""The SCIM sink's guard against stale records: a record older than the one it applied for
the same entity is skipped, whichever producer made it (a full sync that read the vendor
before a callback's record was resolved, DingTalk's recovery). `orgstream replay --topic
records` does not use it: a replay applies what it selects, on purpose."""

from __future__ import annotations

from schemas.record import RecordError, decode_record
from workers.store.sink_versions import SinkVersions


class RecordVersionGate:
    def __init__(self, versions: SinkVersions) -> None:
        self._versions = versions

    async def aclose(self) -> None:
        await self._versions.aclose()

    async def superseded(self, payload: bytes) -> str | None:
        """Why the record must not be applied (a newer one was), or None."""
        try:
            record = decode_record(payload)
        except RecordError:
            return None  # the decoder dead-letters it with its own reason
        applied = await self._versions.applied(record.tenant, record.kind, record.id)
        if record.supersedes(applied):
            return None
        return f"older than the record applied already (version {record.version} < {applied})"

    async def applied(self, payload: bytes) -> None:
        record = decode_record(payload)
        await self._versions.note(record.tenant, record.kind, record.id, record.version)
