"""Where departments sit and who is in them, in the vendor's terms: a Group's parent found by
the Group extension's `parentId` or by a path of names, and a member added to (or removed from)
a Group as a `user/update` of that user's department list. A user left in no department goes
to the root, which both vendors require."""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from workers.directory.ids import group_id
from workers.provision.errors import invalid
from workers.provision.recorded import RecordedWriter
from workers.provision.refresh import Refresher
from workers.provision.users import ROOT_DEPARTMENT, current_write
from workers.store.directory_index import DirectoryIndex
from workers.store.directory_rows import GROUP, USER
from workers.store.mirror import Mirror
from workers.vendors.writes import UserWrite

EVERY_TIME: Final = ""  # `visible_since` that hides nothing


class Memberships:
    def __init__(
        self, tenant: str, refresher: Refresher, index: DirectoryIndex, mirror: Mirror
    ) -> None:
        self._tenant = tenant
        self._refresh = refresher
        self._index = index
        self._mirror = mirror

    async def parent_of(self, path: tuple[str, ...], parent_scim_id: str | None) -> str:
        if parent_scim_id is not None:
            if parent_scim_id == group_id(self._tenant, ROOT_DEPARTMENT):
                return ROOT_DEPARTMENT  # served before the first full sync has indexed it
            stored = await self._index.get(self._tenant, GROUP, parent_scim_id, EVERY_TIME)
            if stored is None:
                raise invalid("parentId", f"no Group {parent_scim_id} here")
            return stored.source_id
        parent = ROOT_DEPARTMENT
        for depth, part in enumerate(path):
            children = await self._mirror.children(self._tenant, parent)
            named = [
                child
                for child in children
                if (d := await self._mirror.department(self._tenant, child)) and d.name == part
            ]
            if not named:
                missing = "/".join(path[: depth + 1])
                raise invalid("displayName", f"the parent department {missing!r} does not exist")
            parent = named[0]
        return parent

    async def check(self, members: list[str]) -> None:
        """Every one of these is a User of the tenant (a 400 naming the first that is not)."""
        for member in members:
            if await self._index.get(self._tenant, USER, member, EVERY_TIME) is None:
                raise invalid("members", f"no User {member} here")

    async def join(self, member: str, department_id: str, writer: RecordedWriter) -> None:
        current = await self._member(member)
        if current is not None and department_id not in current.departments:
            departments = tuple(d for d in current.departments if d != ROOT_DEPARTMENT)
            await self._move(current, (*departments, department_id), writer)

    async def leave(self, member: str, department_id: str, writer: RecordedWriter) -> None:
        current = await self._member(member)
        if current is not None and department_id in current.departments:
            left = tuple(d for d in current.departments if d != department_id)
            await self._move(current, left or (ROOT_DEPARTMENT,), writer)

    async def _move(
        self, current: UserWrite, departments: tuple[str, ...], writer: RecordedWriter
    ) -> None:
        main = current.main_department if current.main_department in departments else None
        moved = replace(current, departments=departments, main_department=main or departments[0])
        await writer.update_user(moved, current)
        await self._refresh.user(current.userid)

    async def _member(self, member: str) -> UserWrite | None:
        """The member as the vendor holds it; None for a leaver (deactivated where that
        deletes, as at DingTalk): no department to change at the vendor."""
        stored = await self._index.get(self._tenant, USER, member, EVERY_TIME)
        if stored is None:
            raise invalid("members", f"no User {member} here")
        if stored.deleted_at is not None:
            return None
        mirrored = await self._mirror.user(self._tenant, stored.source_id)
        if mirrored is None:
            raise invalid("members", f"no User {member} here")
        return current_write(mirrored)
