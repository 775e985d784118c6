"""A vendor writer that notes each call and its outcome, and the write's row in the history."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from typing import TypeVar

from schemas.config import TenantSettings
from schemas.event import utc_iso
from workers.errors import ApplyError
from workers.provision.errors import ProvisionError
from workers.store.history import HistoryEntry, HistoryStore, Outcome
from workers.vendors.writes import DepartmentWrite, DirectoryWriter, UserWrite

T = TypeVar("T")


class RecordedWriter:
    def __init__(self, writer: DirectoryWriter) -> None:
        self._writer = writer
        self.calls: list[str] = []
        self.can_disable = writer.can_disable
        self.needs_mobile = writer.needs_mobile

    async def create_user(self, user: UserWrite) -> None:
        await self._noted(f"user/create {user.userid}", self._writer.create_user(user))

    async def update_user(self, user: UserWrite, before: UserWrite) -> None:
        await self._noted(f"user/update {user.userid}", self._writer.update_user(user, before))

    async def delete_user(self, userid: str) -> None:
        await self._noted(f"user/delete {userid}", self._writer.delete_user(userid))

    async def create_department(self, department: DepartmentWrite) -> str:
        made = self._writer.create_department(department)
        return await self._noted(f"department/create {department.name!r}", made)

    async def update_department(self, department_id: str, department: DepartmentWrite) -> None:
        done = self._writer.update_department(department_id, department)
        await self._noted(f"department/update {department_id}", done)

    async def delete_department(self, department_id: str) -> None:
        done = self._writer.delete_department(department_id)
        await self._noted(f"department/delete {department_id}", done)

    async def _noted(self, call: str, done: Awaitable[T]) -> T:
        try:
            result = await done
        except ApplyError as exc:
            self.calls.append(f"{call} -> {exc}")
            raise
        self.calls.append(f"{call} -> ok")
        return result


async def note_write(
    history: HistoryStore,
    tenant: TenantSettings,
    what: tuple[str, str, str],
    outcome: Outcome,
    writer: RecordedWriter,
    started: float,
    error: ProvisionError | None = None,
) -> None:
    """The write's row in the sync history; `what`: the entity, its id, the change."""
    entity, entity_id, change = what
    await history.record(
        HistoryEntry(
            recorded_at=utc_iso(time.time()),
            tenant=tenant.id,
            vendor=tenant.vendor,
            entity=entity,
            entity_id=entity_id,
            change=f"provisioning: {change}",
            event_id=uuid.uuid4().hex,
            outcome=outcome,
            attempts=1,
            origin="provisioning",
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            operations=writer.calls,
            error=None if error is None else f"{error.status} {error.detail}",
        )
    )
