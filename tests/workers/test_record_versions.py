"""The SCIM sink never applies a record older than one it applied for the same entity: a full
sync's record that reaches the topic after a callback's newer one is skipped, on either store,
and each sink (consumer group) keeps its own versions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.record import encode_record
from tests.schemas.test_record import a_department, a_user
from tests.stores import store_url
from workers.apply.record_versions import RecordVersionGate
from workers.store.sink_versions import SinkVersions, open_sink_versions

OLD, NEW = 1_767_225_600_000, 1_767_225_700_000


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with store_url(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
async def versions(url: str) -> AsyncIterator[SinkVersions]:
    store = open_sink_versions(url, "orgstream-scim")
    yield store
    await store.aclose()


async def test_an_older_record_is_superseded_and_a_newer_or_equal_one_is_not(
    versions: SinkVersions,
) -> None:
    gate = RecordVersionGate(versions)
    newer = encode_record(a_user(version=NEW))
    older = encode_record(a_user(version=OLD, origin="full_sync"))
    assert await gate.superseded(newer) is None  # nothing applied yet
    await gate.applied(newer)
    reason = await gate.superseded(older)
    assert reason is not None
    assert f"{OLD} < {NEW}" in reason
    assert await gate.superseded(newer) is None  # redelivered after a crash: applied again
    # Noting an older version afterwards does not move the mark back.
    await gate.applied(older)
    assert await versions.applied("acme", "user", "zhangwei") == NEW
    # Another tenant's entity of the same id, and another kind, are their own.
    assert await gate.superseded(encode_record(a_user(version=OLD, tenant="globex"))) is None
    same_id_department = a_department(id="zhangwei", version=OLD)
    assert await gate.superseded(encode_record(same_id_department)) is None


async def test_each_sink_keeps_its_own_versions(url: str) -> None:
    first, second = open_sink_versions(url, "scim-a"), open_sink_versions(url, "scim-b")
    try:
        await first.note("acme", "user", "zhangwei", NEW)
        assert await second.applied("acme", "user", "zhangwei") is None
        assert (
            await RecordVersionGate(second).superseded(encode_record(a_user(version=OLD))) is None
        )
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_unreadable_record_is_left_to_the_decoder(versions: SinkVersions) -> None:
    assert await RecordVersionGate(versions).superseded(b"not a record") is None
