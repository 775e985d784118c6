"""Full-sync runs and the per-tenant lease, on SQLite and on PostgreSQL; and the recovery of
the callbacks DingTalk failed to deliver, against the simulated DingTalk API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from receiver.publisher import MemoryEventPublisher
from tests.stores import store_url
from workers.dev.harness import new_dingtalk_simulator
from workers.fullsync.failed_callbacks import recover_failed_callbacks
from workers.simulator.dingtalk import SimUser
from workers.simulator.dingtalk_api import DingTalkApi
from workers.store.sync_runs import SyncRuns, open_runs
from workers.vendors.dingtalk import DingTalkDirectory


@pytest.fixture(params=["sqlite", "postgresql"])
async def runs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SyncRuns]:
    async with store_url(request.param, tmp_path) as url:
        store = open_runs(url)
        yield store
        await store.aclose()


async def test_one_holder_at_a_time_until_release_or_expiry(runs: SyncRuns) -> None:
    assert await runs.acquire("acme", "worker-a", now=1000.0, seconds=120)
    assert not await runs.acquire("acme", "worker-b", now=1010.0, seconds=120)
    assert await runs.acquire("beta", "worker-b", now=1010.0, seconds=120)  # other tenant
    assert await runs.acquire("acme", "worker-a", now=1100.0, seconds=120)  # renewed to 1220
    assert not await runs.acquire("acme", "worker-b", now=1200.0, seconds=120)
    assert await runs.acquire("acme", "worker-b", now=1221.0, seconds=120)  # a lapsed lease
    await runs.release("acme", "worker-a")  # not the holder any more: changes nothing
    assert not await runs.acquire("acme", "worker-a", now=1222.0, seconds=120)
    await runs.release("acme", "worker-b")
    assert await runs.acquire("acme", "worker-a", now=1223.0, seconds=120)


async def test_runs_are_recorded_with_counts_and_errors_newest_first(runs: SyncRuns) -> None:
    first = await runs.start("acme", "manual", 1000.0)
    await runs.finish(first, "succeeded", 1030.0, {"created": 5300, "failed": 0}, [])
    second = await runs.start("acme", "schedule", 2000.0)
    await runs.finish(second, "failed", 2004.0, {}, ["WalkFailed: department walk failed: 三"])
    await runs.start("beta", "manual", 3000.0)

    listed = await runs.listed("acme")
    assert [(r.run_id, r.trigger, r.status) for r in listed] == [
        (second, "schedule", "failed"),
        (first, "manual", "succeeded"),
    ]
    assert listed[0].errors == ["WalkFailed: department walk failed: 三"]
    assert listed[1].counts == {"created": 5300, "failed": 0}
    assert listed[1].ended_at == "1970-01-01T00:17:10.000Z"
    assert await runs.last_started("acme") == 2000.0
    assert await runs.last_started("acme", "manual") == 1000.0
    assert await runs.last_started("nobody") is None
    assert [r.status for r in await runs.listed("beta")] == ["running"]


async def test_failed_dingtalk_callbacks_are_published_and_forgotten_by_dingtalk() -> None:
    sim = new_dingtalk_simulator()
    api = DingTalkApi(sim)
    source = DingTalkDirectory(
        "http://dingtalk.sim", sim.app_key, sim.app_secret,
        transport=httpx.ASGITransport(app=api.app),
    )  # fmt: skip
    sim.create_department("研发", 1)
    department = next(d.id for d in sim.departments.values() if d.name == "研发")
    api.undelivered(sim.create_department("市场", 1))
    for index in range(250):  # more than DingTalk hands out in one answer
        api.undelivered(
            sim.create_user(SimUser(f"u{index}", f"用户{index}", (department,), department))
        )
    api.failed_callbacks.append({"call_back_tag": "user_modify_org", "event_time": 1,
                                 "user_modify_org": {"corpid": sim.corp_id}})  # fmt: skip
    publisher = MemoryEventPublisher()

    recovered = await recover_failed_callbacks("beta", sim.corp_id, source, publisher)

    assert (recovered.callbacks, recovered.events, recovered.without_ids) == (252, 251, 1)
    assert recovered.needs_full_sync
    assert api.failed_callbacks == []
    published = {(e.entity, e.entity_id, e.change) for e in publisher.published}
    assert ("user", "u249", "created") in published
    assert len({e for e in published if e[0] == "user"}) == 250
    market_id = next(d.id for d in sim.departments.values() if d.name == "市场")
    assert ("department", str(market_id), "created") in published
    paths = [c.path for c in api.calls if "failed" in c.path]
    assert len(paths) == 2  # 200, then the remaining 52
    await source.aclose()
