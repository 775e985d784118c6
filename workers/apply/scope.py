"""A target's scope applied to what the source says (docs/mapping.md).

`ScopedSource` stands between the applier and the tenant's directory: a user or department out
of the target's scope reads as gone at the source, so the applier deprovisions it through the
deletion guard like a leaver; a user in scope keeps only their in-scope departments; a
department at the top of an included subtree has no parent on the target. `scoped_snapshot`
does the same to a full sync's snapshot, from the snapshot alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from schemas.mapping.scope import Scope
from schemas.record import NO_PARENT
from workers.apply.mapping import mapping_record
from workers.vendors.source import SourceDepartment, SourceDirectory, SourceUser
from workers.vendors.walk import Snapshot

_MAX_DEPTH: Final = 64  # deeper than any real org chart; stops a parent cycle in bad data
# How long a department's parent is trusted. Another process may apply the move of a department
# (its events go to one partition): this bounds how long this one places users by the old tree.
PARENT_TTL_SECONDS: Final = 60.0


class ScopedSource:
    def __init__(
        self,
        source: SourceDirectory,
        scope: Scope,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._scope = scope
        self._clock = clock
        self._parents: dict[str, tuple[str | None, float]] = {}  # id -> (parent; None: gone)

    @property
    def scope(self) -> Scope:
        return self._scope

    async def get_user(self, userid: str) -> SourceUser | None:
        user = await self._source.get_user(userid)
        return None if user is None else await self.user(user)

    async def get_department(self, department_id: str) -> SourceDepartment | None:
        department = await self._source.get_department(department_id)
        if department is None:
            self._parents[department_id] = (None, self._clock())
            return None
        return await self.department(department)

    async def aclose(self) -> None:
        return None  # the source is the applier's to close

    async def user(self, user: SourceUser) -> SourceUser | None:
        """The user as this target sees them: None when out of scope."""
        if self._scope.everything:
            return user
        if not _admitted(self._scope, user):
            return None
        if not self._scope.by_departments:
            return user
        kept = tuple([d for d in user.departments if await self._holds(d)])
        if not kept:
            return None
        main = user.main_department if user.main_department in kept else kept[0]
        return replace(user, departments=kept, main_department=main)

    async def department(self, department: SourceDepartment) -> SourceDepartment | None:
        if self._scope.everything:
            return department
        self._parents[department.id] = (department.parent_id, self._clock())
        if not await self._holds(department.id):
            return None
        if department.parent_id and not await self._holds(department.parent_id):
            return replace(department, parent_id=NO_PARENT)  # the top of an included subtree
        return department

    async def _holds(self, department_id: str) -> bool:
        if not self._scope.by_departments:
            return True  # only users are filtered: no ancestry to read
        ancestry: list[str] = []
        current: str | None = department_id
        while current and len(ancestry) < _MAX_DEPTH:
            ancestry.append(current)
            current = await self._parent(current)
            if current is None and len(ancestry) == 1:
                return False  # the department itself is gone
        return self._scope.holds_department(ancestry)

    async def _parent(self, department_id: str) -> str | None:
        """The parent's id (NO_PARENT at the root), None when the department is gone."""
        known = self._parents.get(department_id)
        if known is not None and self._clock() - known[1] < PARENT_TTL_SECONDS:
            return known[0]
        department = await self._source.get_department(department_id)
        parent = None if department is None else department.parent_id
        self._parents[department_id] = (parent, self._clock())
        return parent


def scoped_snapshot(scope: Scope, snapshot: Snapshot) -> Snapshot:
    """The part of a full sync's snapshot the target gets; the rest is as good as gone."""
    if scope.everything:
        return snapshot
    if not scope.by_departments:  # user conditions only: the event path's rule exactly
        users = {u: user for u, user in snapshot.users.items() if _admitted(scope, user)}
        return Snapshot(snapshot.departments, users)
    departments = snapshot.departments

    def ancestry(department_id: str) -> list[str]:
        chain: list[str] = []
        current = department_id
        while current in departments and current not in chain and len(chain) < _MAX_DEPTH:
            chain.append(current)
            current = departments[current].parent_id
        return chain

    held = {d for d in departments if scope.holds_department(ancestry(d))}
    kept_departments = {
        d: department if department.parent_id in held else replace(department, parent_id=NO_PARENT)
        for d, department in departments.items()
        if d in held
    }
    users = {}
    for userid, user in snapshot.users.items():
        kept = tuple(d for d in user.departments if d in held)
        if kept and _admitted(scope, user):
            main = user.main_department if user.main_department in kept else kept[0]
            users[userid] = replace(user, departments=kept, main_department=main)
    return Snapshot(kept_departments, users)


def _admitted(scope: Scope, user: SourceUser) -> bool:
    """The scope's user conditions, the user's fields gathered only when there are some."""
    return not scope.users or scope.admits(mapping_record(user))
