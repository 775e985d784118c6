"""`orgstream sync` and the worker's schedule against real processes: the CLI and the worker,
Tansu, scim2-server behind a counting proxy, and the simulated vendors' APIs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import Broker, Stack, make_stack, orgstream, orgstream_async
from workers.dev.harness import SCIM_TOKEN, post_callback, tenant_of, wait_converged
from workers.scim.target import ScimTarget, filter_eq
from workers.simulator.dingtalk import DingTalkSimulator, SimUser
from workers.simulator.dingtalk_api import DingTalkApi
from workers.simulator.directory import SimDepartment
from workers.simulator.org import populate
from workers.simulator.views import scim_view, source_view
from workers.simulator.wecom import WeComSimulator

pytestmark = pytest.mark.integration
FAST_API = 5000.0  # vendor calls per second: the simulators take it, the walk uses it


def writes(stack: Stack) -> int:
    assert stack.faults is not None
    return sum(n for method, n in stack.faults.methods.items() if method != "GET")


async def sync(stack: Stack, *options: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = await orgstream_async(
        stack, "sync", "--tenant", tenant_of(stack.sim), "--json", *options
    )
    return code, orjson.loads(out) if out.strip() else {}, err


async def differences(stack: Stack) -> list[str]:
    target = ScimTarget(stack.scim_url, SCIM_TOKEN, 30.0)
    try:
        view = await scim_view(
            target, stack.sim.vendor, stack.sim.corp_id, stack.sim.department_number
        )
    finally:
        await target.aclose()
    return source_view(stack.sim).differences(view)


def runs(stack: Stack) -> list[dict[str, Any]]:
    shown = orgstream(stack, "history", "--runs", "--json")
    assert shown.returncode == 0, shown.stderr
    return [orjson.loads(line) for line in shown.stdout.splitlines() if line.strip()]


async def test_a_first_sync_imports_5000_users_and_a_second_writes_nothing(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    """DingTalk here; WeCom's 5,000 go through the feed (test_full_sync_feed.py)."""
    async for stack in make_stack(
        broker, scim_server, tmp_path, ("dingtalk",), faulty_target=True, api_qps=FAST_API
    ):
        populate(stack.sim, users=5000, departments=300, depth=5, seed=20261122)
        assert sum(len(u.departments) > 1 for u in stack.sim.users.values()) > 500

        code, first, err = await sync(stack)
        assert code == 0, err
        assert first["status"] == "succeeded", first["errors"]
        assert first["counts"]["created"] == 5300
        assert first["counts"]["failed"] == 0
        assert await differences(stack) == []

        before = writes(stack)
        code, second, err = await sync(stack)
        assert code == 0, err
        assert second["counts"]["unchanged"] == 5300
        assert second["counts"]["created"] == second["counts"]["updated"] == 0
        assert writes(stack) == before  # the second run only read

        recorded = runs(stack)
        assert [r["status"] for r in recorded] == ["succeeded", "succeeded"]
        assert {r["trigger"] for r in recorded} == {"manual"}


async def test_drift_is_planned_by_a_dry_run_and_repaired_by_one_sync(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async for stack in make_stack(
        broker, scim_server, tmp_path, ("dingtalk",), faulty_target=True, api_qps=FAST_API
    ):
        sim = stack.sim
        assert isinstance(sim, DingTalkSimulator)
        populate(sim, users=200, departments=30, depth=4, seed=7)
        assert (await sync(stack))[0] == 0
        target = ScimTarget(stack.scim_url, SCIM_TOKEN, 30.0)
        prefix = f"dingtalk:{sim.corp_id}"
        edited = await target.find_one("Users", filter_eq("externalId", f"{prefix}:user:u00010"))
        gone = await target.find_one("Users", filter_eq("externalId", f"{prefix}:user:u00011"))
        group = await target.find_one("Groups", filter_eq("externalId", f"{prefix}:dept:105"))
        assert edited is not None
        assert gone is not None
        assert group is not None
        # By hand in SCIM: a user edited, a user deleted, a Group renamed.
        await target.patch(
            "Users", edited["id"], [{"op": "replace", "path": "title", "value": "改了"}]
        )
        await target.delete("Users", gone["id"])
        await target.patch(
            "Groups", group["id"], [{"op": "replace", "path": "displayName", "value": "改了"}]
        )
        await target.aclose()
        # At the source, callbacks dropped: a department renamed, a hire, a leaver, a move.
        renamed = sim.departments[106]
        sim.departments[106] = SimDepartment(106, "改名的部门", renamed.parent_id, renamed.order)
        sim.create_user(SimUser("hire", "新人", (106,), 106))
        sim.delete_user("u00013")
        sim.update_user("u00014", departments=(107,), main_department=107)
        drift = await differences(stack)
        assert len(drift) >= 6

        before = writes(stack)
        code, plan, err = await sync(stack, "--dry-run")
        assert code == 0, err
        assert writes(stack) == before  # planned, not made
        assert await differences(stack) == drift
        assert plan["counts"]["created"] == 2  # the hire, and the user deleted by hand
        assert plan["counts"]["deactivated"] == 1
        assert any("POST /Users" in line and "u00011" in line for line in plan["plan"])

        code, done, err = await sync(stack)
        assert code == 0, err
        assert done["counts"]["created"] == 2
        assert done["counts"]["deactivated"] == 1
        assert done["counts"]["updated"] >= 3
        assert await differences(stack) == []


async def test_callbacks_during_a_sync_are_not_undone(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async for stack in make_stack(broker, scim_server, tmp_path, api_qps=FAST_API):
        sim = stack.sim
        assert isinstance(sim, WeComSimulator)
        populate(sim, users=600, departments=40, depth=4, seed=11)
        # The walk reads users in userid order; hold it once it has read 300 of them (but let
        # the worker read the users the callbacks below are about).
        changed = frozenset({"u00010", "u00020", "u00030"})
        stack.api.faults.pause_after("user/get", 300, exempt=changed)
        running = asyncio.create_task(sync(stack))
        await asyncio.wait_for(stack.api.faults.paused.wait(), 60)
        # Users the walk has read already, and a department it has named already, change now,
        # with callbacks: the snapshot holds their old state.
        changes = [
            sim.update_user("u00010", "full", name="改名后", position="新职位"),
            sim.update_user("u00020", "ids", departments=(102,), main_department=102),
            sim.delete_user("u00030"),
            sim.rename_department(103, "新部门名", "full"),
        ]
        async with httpx.AsyncClient() as client:
            for plaintext in changes:
                assert plaintext is not None
                assert (await post_callback(client, stack.receiver_url, sim, plaintext)).is_success
        await _applied(stack, {"u00010", "u00020", "u00030", "103"})
        stack.api.faults.resume()

        code, outcome, err = await asyncio.wait_for(running, 240)
        assert code == 0, err
        assert outcome["counts"]["deferred"] >= 4
        assert outcome["rechecked"] >= 4
        remaining, _ = await wait_converged(sim, stack.scim_url, timeout=60)
        assert remaining == []
        target = ScimTarget(stack.scim_url, SCIM_TOKEN, 30.0)
        prefix = f"wecom:{sim.corp_id}:user:"
        renamed = await target.find_one("Users", filter_eq("externalId", f"{prefix}u00010"))
        left = await target.find_one("Users", filter_eq("externalId", f"{prefix}u00030"))
        await target.aclose()
        assert renamed is not None
        assert (renamed["displayName"], renamed["title"]) == ("改名后", "新职位")
        assert left is None or left["active"] is False


async def _applied(stack: Stack, entity_ids: set[str], timeout: float = 60.0) -> None:
    """Wait until the worker has recorded an outcome for each of these entities."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = orgstream(stack, "history", "--json", "--limit", "500")
        seen = {orjson.loads(x)["entity_id"] for x in shown.stdout.splitlines() if x.strip()}
        if entity_ids <= seen:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the worker did not apply {sorted(entity_ids)}")


async def test_a_walk_failing_half_way_deprovisions_nothing_and_the_run_says_why(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async for stack in make_stack(
        broker, scim_server, tmp_path, ("dingtalk",), faulty_target=True, api_qps=FAST_API
    ):
        sim = stack.sim
        assert isinstance(sim, DingTalkSimulator)
        populate(sim, users=150, departments=40, depth=4, seed=13)
        assert (await sync(stack))[0] == 0
        for userid in ("u00001", "u00002", "u00003"):
            sim.delete_user(userid)  # leavers whose callbacks were lost
        # DingTalk starts failing half-way through the department walk.
        stack.api.faults.fail_after("/topapi/v2/department/listsub", 20, -1)

        before = writes(stack)
        code, outcome, _ = await sync(stack)

        assert code == 1
        assert outcome["status"] == "failed"
        assert writes(stack) == before  # nothing deactivated, nothing deleted, nothing at all
        recorded = runs(stack)[0]
        assert recorded["status"] == "failed"
        assert any("department walk failed" in e for e in recorded["errors"])
        table = orgstream(stack, "history", "--runs")
        assert "failed" in table.stdout
        assert "department walk failed" in table.stdout


async def test_the_schedule_recovers_callbacks_dingtalk_failed_to_deliver(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async for stack in make_stack(
        broker,
        scim_server,
        tmp_path,
        ("dingtalk",),
        extra_toml="[sync]\nfailed_callbacks_minutes = 0.02\n",
    ):
        sim = stack.sim
        assert isinstance(sim, DingTalkSimulator)
        api = stack.api
        assert isinstance(api, DingTalkApi)
        # The receiver was down: DingTalk kept every callback instead of delivering it.
        api.undelivered(sim.create_department("研发", 1))
        department = max(sim.departments)
        for index in range(30):
            user = SimUser(f"r{index:02d}", f"用户{index}", (department,), department)
            api.undelivered(sim.create_user(user, form="legacy"))
        api.undelivered(sim.update_user("r00", name="改过名"))
        api.undelivered(sim.delete_user("r01"))

        remaining, _ = await wait_converged(sim, stack.scim_url, timeout=90)
        assert remaining == []
        assert api.failed_callbacks == []
        seen = orgstream(stack, "history", "--json", "--limit", "200").stdout
        assert '"entity_id":"r29"' in seen


async def test_the_schedule_runs_a_full_sync_that_picks_up_a_rename_with_no_callback(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async for stack in make_stack(
        broker,
        scim_server,
        tmp_path,
        extra_toml="[sync]\ninterval_minutes = 0.05\n",
        api_qps=FAST_API,
    ):
        sim = stack.sim
        populate(sim, users=50, departments=8, depth=3, seed=17)
        assert sim.rename_department(102, "改名了", "ids") is None  # WeCom sends nothing
        remaining, _ = await wait_converged(sim, stack.scim_url, timeout=90)
        assert remaining == []
        deadline = time.monotonic() + 60
        while not any(r["status"] == "succeeded" for r in runs(stack)):
            assert time.monotonic() < deadline, runs(stack)
            await asyncio.sleep(0.5)
        assert {r["trigger"] for r in runs(stack)} == {"schedule"}
