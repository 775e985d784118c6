"""The resolver: hints in, complete records out (docs/design.md, principles 1 and 2).

For each batch of hints, each touched entity is described once: from the latest hint when it
carries the whole entity, otherwise by one vendor read, whatever the number of hints about it.
"Not found" at the vendor is a deletion, and only then: a hint saying "deleted" is not taken at
its word. The departments a user belongs to, and every ancestor of a department, are described
too when neither the mirror nor this resolver has described them yet, before the records that
need them. The records go to the directory feed (acks=all) before the batch is committed.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, Protocol

import structlog

from schemas.config import Settings
from schemas.event import ContactEvent, SchemaError, decode, encode
from schemas.record import DirectoryRecord, Origin, encode_record
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN, dead_letter_topic
from workers.errors import DeadLetter, DependencyMissing, RetryLater, VendorRejected
from workers.kafka.batches import Batch
from workers.kafka.producer import Headers
from workers.resolve.plan import Work, plan
from workers.store.mirror import Mirror
from workers.vendors.records import RecordMaker
from workers.vendors.source import SourceDepartment, SourceDirectory, SourceUser

_MAX_DEPTH: Final = 64  # deeper than any real org chart; stops a parent cycle in bad data
log = structlog.get_logger("orgstream.resolver")


class Sources(Protocol):
    def source_for(self, tenant_id: str) -> SourceDirectory | None:
        """The tenant's vendor directory, or None for a tenant not configured."""
        ...


class RecordProducer(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None: ...

    async def send_all(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None: ...


class Resolver:
    def __init__(
        self,
        settings: Settings,
        sources: Sources,
        mirror: Mirror,
        producer: RecordProducer,
        group: str,
        clock: Callable[[], float] = time.time,
        origin: Origin = "callback",
    ) -> None:
        """`origin`: what the records say made them (`replay` when `orgstream replay`
        re-resolves hints)."""
        self._settings = settings
        self._sources = sources
        self._mirror = mirror
        self._producer = producer
        self._directory_topic = settings.kafka.directory_topic
        self._dlq_topic = dead_letter_topic(settings.kafka.topic, group)
        self._clock = clock
        self._origin = origin
        # Departments this process has published, per tenant: described, whatever the mirror
        # has caught up with.
        self._described: dict[str, set[str]] = defaultdict(set)

    async def handle(self, batch: Batch) -> None:
        by_tenant: dict[str, list[ContactEvent]] = defaultdict(list)
        for record in batch:
            origin = f"{record.topic}/{record.partition}/{record.offset}"
            try:
                event = decode(record.value)
            except SchemaError as exc:
                await self._dead_letter(record.value, record.key, origin, f"schema: {exc}")
                continue
            if self._sources.source_for(event.tenant) is None:
                error = f"unknown tenant {event.tenant!r}"
                await self._dead_letter(record.value, record.key, origin, error)
                continue
            by_tenant[event.tenant].append(event)
        await asyncio.gather(*(self._tenant(t, events) for t, events in by_tenant.items()))

    async def _tenant(self, tenant_id: str, events: Sequence[ContactEvent]) -> None:
        """Describe every entity the tenant's hints touch, then publish the records in order."""
        tenant = self._settings.tenant(tenant_id)
        source = self._sources.source_for(tenant_id)
        assert tenant is not None  # checked in `handle`
        assert source is not None
        maker = RecordMaker(
            tenant_id, tenant.vendor, self._origin, self._settings.feed.exclude_fields
        )
        described: set[str] = set()
        records: list[DirectoryRecord] = []
        # A provisioning tenant's callbacks are mostly the echoes of orgstream's own writes,
        # and an echo can arrive after a later write: its content is as of the write it echoes,
        # so the vendor is read instead, lest an older state come back over a newer one.
        # A callback never carries the vendor's custom fields: where a target's mapping or scope
        # reads them, the record must come from the vendor, or it would lack them.
        reads_custom = self._settings.scim_for(tenant).reads_custom
        trusted = self._origin == "callback" and tenant.provisioning is None and not reads_custom
        for work in plan(events, trust_complete=trusted):
            try:
                records += await self._describe(work, source, maker, described)
            except RetryLater as exc:
                if not isinstance(exc, DependencyMissing):
                    raise  # brief (the vendor throttling or away): the whole batch again later
                await self._dead_letter_work(work, str(exc))  # a tenant without API access
            except (DeadLetter, ValueError) as exc:  # retrying cannot help
                await self._dead_letter_work(work, f"{type(exc).__name__}: {exc}")
        await self._producer.send_all(
            self._directory_topic, [(r.key, encode_record(r)) for r in records]
        )
        self._described[tenant_id] |= described
        log.info("resolved", tenant=tenant_id, hints=len(events), records=len(records))

    async def _describe(
        self, work: Work, source: SourceDirectory, maker: RecordMaker, described: set[str]
    ) -> list[DirectoryRecord]:
        version = self._version()  # before the read: what it returns is at least this fresh
        state = work.complete or await self._read(work, source)
        if work.complete is not None:  # as of when the hint arrived, not now
            version = _millis(work.hints[-1].received_at, version)
        if state is None:  # not found at the vendor: confirmed gone
            return [maker.deletion(work.kind, work.id, version, work.hints, work.renamed_to)]
        if isinstance(state, SourceUser):
            needed: list[DirectoryRecord] = []
            for department_id in state.departments:
                needed += await self._department_chain(department_id, source, maker, described, 0)
            return [*needed, maker.user(state, version, work.hints)]
        ancestors = await self._department_chain(state.parent_id, source, maker, described, 0)
        described.add(state.id)
        return [*ancestors, maker.department(state, version, work.hints)]

    async def _read(
        self, work: Work, source: SourceDirectory
    ) -> SourceUser | SourceDepartment | None:
        if work.kind == "user":
            return await source.get_user(work.id)
        return await source.get_department(work.id)

    async def _department_chain(
        self,
        department_id: str,
        source: SourceDirectory,
        maker: RecordMaker,
        described: set[str],
        depth: int,
    ) -> list[DirectoryRecord]:
        """Records for a department nobody has described yet, and for its ancestors, root
        first; nothing for one already described (here, in this batch, or in the mirror)."""
        tenant = maker.tenant
        if not department_id or department_id in described | self._described[tenant]:
            return []
        if depth > _MAX_DEPTH or await self._mirror.department(tenant, department_id):
            return []
        try:
            department = await source.get_department(department_id)
        except (DependencyMissing, VendorRejected):  # no API access, or out of the app's sight
            return []
        described.add(department_id)
        if department is None:
            return []  # gone: the user's next record will not name it
        ancestors = await self._department_chain(
            department.parent_id, source, maker, described, depth + 1
        )
        return [*ancestors, maker.department(department, self._version(), [])]

    def _version(self) -> int:
        return int(self._clock() * 1000)

    async def _dead_letter_work(self, work: Work, error: str) -> None:
        for hint in work.hints:
            await self._dead_letter(encode(hint), hint.key, hint.event_id, error)

    async def _dead_letter(self, value: bytes, key: bytes | None, origin: str, error: str) -> None:
        headers = [(HEADER_ERROR, error.encode()), (HEADER_ORIGIN, origin.encode())]
        await self._producer.send(self._dlq_topic, value, key, headers)
        log.error("dead_lettered", stage="resolver", error=error)


def _millis(moment: str, otherwise: int) -> int:
    """An RFC 3339 UTC time in milliseconds since the epoch."""
    try:
        return int(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return otherwise
