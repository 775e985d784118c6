"""What the SCIM path makes of a record when it reads the feed: a complete input the applier
uses without the vendor, and the mirror as its source, which says "not yet" rather than
"deleted" for what it does not hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.record import encode_record
from tests.schemas.test_record import a_deletion, a_department, a_user
from workers.apply.records import MirrorSource, event_of, event_of_record
from workers.errors import DependencyMissing
from workers.store.mirror import Mirror, open_mirror
from workers.vendors.source import department_from_attributes, user_from_attributes


def test_a_user_record_is_a_complete_user_the_applier_reads_as_is() -> None:
    event = event_of(a_user())
    assert (event.entity, event.entity_id, event.change) == ("user", "zhangwei", "created")
    assert event.event_id == "e1"  # the hint it answers: history and replay trace it
    user = user_from_attributes(event.attributes)
    assert user is not None
    assert (user.name, user.departments, user.main_department) == ("张伟", ("1", "7"), "7")
    assert (user.position, user.mobile, user.direct_leaders) == ("工程师", "13800000000", ("lisi",))


def test_a_department_record_and_deletions() -> None:
    department = department_from_attributes(event_of(a_department()).attributes)
    assert department is not None
    assert (department.id, department.name, department.parent_id) == ("7", "研发中心", "1")
    renamed = event_of(a_deletion())
    assert (renamed.change, renamed.attributes["new_userid"]) == ("renamed", "zhangwei2")
    gone = event_of(a_user(user=None, deleted=True))
    assert gone.change == "deleted"
    with pytest.raises(ValueError, match="not a directory record"):
        event_of_record(b'{"schema_version": 1}')


@pytest.fixture
async def mirror(tmp_path: Path) -> AsyncIterator[Mirror]:
    store = open_mirror(f"sqlite:///{tmp_path / 'mirror.db'}")
    yield store
    await store.aclose()


async def test_the_mirror_source_waits_for_what_it_lacks_and_knows_what_is_gone(
    mirror: Mirror,
) -> None:
    source = MirrorSource(mirror, "acme")
    with pytest.raises(DependencyMissing):
        await source.get_department("7")
    department = a_department(tenant="acme")
    await mirror.apply(department, encode_record(department))
    found = await source.get_department("7")
    assert found is not None
    assert found.name == "研发中心"
    deletion = a_user(user=None, deleted=True, version=2_000_000_000_000)
    await mirror.apply(deletion, encode_record(deletion))
    assert await source.get_user("zhangwei") is None
