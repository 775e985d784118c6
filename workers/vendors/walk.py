"""Read a tenant's whole directory from the vendor API: the snapshot a full sync compares the
SCIM target with.

Departments first (their names and parents), then every userid, then each user's details,
with `WALK_CONCURRENCY` calls in flight under the tenant's rate limiter: the same limiter the
worker's event path uses in this process. Any failure fails the whole walk: a snapshot with
holes would read as "these users left".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from workers.concurrency import gather_bounded
from workers.errors import ApplyError
from workers.vendors.http import WALK_CONCURRENCY
from workers.vendors.source import SourceDepartment, SourceDirectory, SourceUser


class WalkFailed(Exception):
    """The walk could not read the whole directory; the message says which step failed."""


@runtime_checkable
class WalkableDirectory(SourceDirectory, Protocol):
    async def walk_departments(self) -> list[SourceDepartment]: ...

    async def walk_user_ids(self, departments: Iterable[str]) -> set[str]: ...


@runtime_checkable
class ListsUsersInFull(Protocol):
    """A vendor whose department member lists hold every field (Feishu): no user is read
    twice."""

    async def walk_users(self, departments: Iterable[str]) -> dict[str, SourceUser]: ...


@dataclass(frozen=True)
class Snapshot:
    departments: dict[str, SourceDepartment]
    users: dict[str, SourceUser]


Progress = Callable[[str, int, int], None]  # (step, done, total)


async def walk(source: SourceDirectory, progress: Progress | None = None) -> Snapshot:
    if not isinstance(source, WalkableDirectory):
        raise WalkFailed("the tenant has no API credentials: a full sync needs the vendor API")
    report = progress or (lambda step, done, total: None)
    try:
        departments = {d.id: d for d in await source.walk_departments()}
    except ApplyError as exc:
        raise WalkFailed(f"department walk failed: {exc}") from exc
    report("departments", len(departments), len(departments))
    if isinstance(source, ListsUsersInFull):
        try:
            listed = await source.walk_users(departments)
        except ApplyError as exc:
            raise WalkFailed(f"user list failed: {exc}") from exc
        report("users", len(listed), len(listed))
        return Snapshot(departments, listed)
    try:
        userids = sorted(await source.walk_user_ids(departments))
    except ApplyError as exc:
        raise WalkFailed(f"user list failed: {exc}") from exc
    done = 0

    async def detail(userid: str) -> SourceUser | None:
        nonlocal done
        user = await source.get_user(userid)
        done += 1
        if done % 100 == 0 or done == len(userids):
            report("users", done, len(userids))
        return user

    try:
        users = await gather_bounded(userids, detail, WALK_CONCURRENCY)
    except ApplyError as exc:
        raise WalkFailed(f"user details failed: {exc}") from exc
    # None: left between the listing and the read, so not in the directory any more.
    return Snapshot(departments, {u.userid: u for u in users if u is not None})
