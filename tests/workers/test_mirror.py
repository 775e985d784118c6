"""The mirror store, on SQLite and on PostgreSQL: the latest record of each entity, tombstones
that an older record cannot undo, memberships, and forgetting before a rebuild."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.record import DirectoryRecord, Membership, UserState, encode_record
from tests.schemas.test_record import a_department, a_user
from tests.stores import store_url
from workers.store.mirror import Mirror, open_mirror


@pytest.fixture(params=["sqlite", "postgresql"])
async def mirror(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mirror]:
    async with store_url(request.param, tmp_path) as url:
        store = open_mirror(url)
        yield store
        await store.aclose()


async def keep(mirror: Mirror, record: DirectoryRecord) -> bool:
    return await mirror.apply(record, encode_record(record))


def moved(record: DirectoryRecord, version: int, *departments: str) -> DirectoryRecord:
    assert record.user is not None
    user = dataclasses.replace(record.user, departments=tuple(Membership(d) for d in departments))
    return dataclasses.replace(record, version=version, user=user)


async def test_the_latest_record_is_kept_and_an_older_one_ignored(mirror: Mirror) -> None:
    assert await keep(mirror, moved(a_user(), 10, "1", "7"))
    assert await keep(mirror, moved(a_user(), 20, "9"))
    assert not await keep(mirror, moved(a_user(), 15, "1"))  # late: the full sync read it earlier
    user = await mirror.user("acme", "zhangwei")
    assert isinstance(user, UserState)
    assert [m.department for m in user.departments] == ["9"]
    assert await mirror.members("acme", "9") == ["zhangwei"]
    assert await mirror.members("acme", "1") == []
    assert await mirror.version("acme", "user", "zhangwei") == 20


async def test_a_deletion_is_a_tombstone_an_older_record_cannot_undo(mirror: Mirror) -> None:
    await keep(mirror, moved(a_user(), 10, "7"))
    deletion = a_user(version=30, user=None, deleted=True)
    assert await keep(mirror, deletion)
    assert not await keep(mirror, moved(a_user(), 25, "7"))
    assert await mirror.user("acme", "zhangwei") is None
    assert await mirror.members("acme", "7") == []
    directory = await mirror.directory("acme")
    assert (directory.users, directory.deleted_users) == ((), ("zhangwei",))


async def test_departments_and_tenants_are_kept_apart(mirror: Mirror) -> None:
    await keep(mirror, a_department(tenant="acme"))
    await keep(mirror, a_department(tenant="beta"))
    department = await mirror.department("acme", "7")
    assert department is not None
    assert (department.name, department.parent_id) == ("研发中心", "1")
    await mirror.forget("acme")
    assert await mirror.department("acme", "7") is None
    assert await mirror.department("beta", "7") is not None
