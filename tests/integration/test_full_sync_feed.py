"""`orgstream sync` with the directory feed on, against real processes: the walk becomes records
on the feed (the worker's resolver, mirror and SCIM sink take them in), and the target is then
brought to the mirror, which repairs drift. The same promises as without the feed
(test_full_sync.py): a first sync of 5,000 users, a second that changes nothing, drift
repaired, callbacks during a sync not undone, a failed walk that touches nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import Broker, Stack, make_stack, orgstream, read_topic
from tests.integration.test_directory_feed import mirror_converged
from tests.integration.test_full_sync import FAST_API, differences, runs, sync, writes
from workers.dev.harness import SCIM_TOKEN, post_callback, tenant_of, wait_converged
from workers.scim.target import ScimTarget, filter_eq
from workers.simulator.dingtalk import DingTalkSimulator, SimUser
from workers.simulator.directory import SimDepartment
from workers.simulator.org import populate
from workers.simulator.wecom import WeComSimulator

pytestmark = pytest.mark.integration
FEED = "[feed]\nenabled = true\n"


def history(stack: Stack) -> list[dict[str, Any]]:
    shown = orgstream(stack, "history", "--json", "--limit", "10000")
    assert shown.returncode == 0, shown.stderr
    return [orjson.loads(line) for line in shown.stdout.splitlines() if line.strip()]


async def test_a_first_sync_through_the_feed_imports_5000_users_and_a_second_changes_nothing(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    """Feishu's 5,000 (its walk lists whole users page by page, from the root "0"); DingTalk's
    5,000 go the other way, without the feed (test_full_sync.py), and WeCom's walk at this size
    is measured by `make bench` (the full-sync benchmark)."""
    async for stack in make_stack(
        broker,
        scim_server,
        tmp_path,
        ("feishu",),
        faulty_target=True,
        api_qps=FAST_API,
        extra_toml=FEED,
    ):
        populate(stack.sim, users=5000, departments=300, depth=5, seed=20261130)

        code, first, err = await sync(stack)
        assert code == 0, err
        assert first["status"] == "succeeded", first["errors"]
        assert first["counts"]["published"] == 5300  # every user and department, as records
        assert first["counts"]["failed"] == 0
        # The run returns once the SCIM sink has taken the records in: the target is whole.
        assert await differences(stack) == []
        assert (await mirror_converged(stack, timeout=5))[0] == []
        records = await read_topic(broker.bootstrap, f"{stack.topic}.directory", 1.0)
        assert len(records) == 5300
        assert all(orjson.loads(r)["origin"] == "full_sync" for r in records)

        before = writes(stack)
        code, second, err = await sync(stack)
        assert code == 0, err
        assert second["counts"]["published"] == second["counts"]["confirming"] == 0
        assert second["counts"]["created"] == second["counts"]["updated"] == 0
        assert second["counts"]["unchanged"] == 5300
        assert writes(stack) == before  # the second run only read
        assert [r["status"] for r in runs(stack)] == ["succeeded", "succeeded"]


async def test_drift_through_the_feed_is_planned_by_a_dry_run_and_repaired_by_one_sync(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async for stack in make_stack(
        broker, scim_server, tmp_path, ("dingtalk",), faulty_target=True, api_qps=FAST_API,
        extra_toml=FEED,
    ):  # fmt: skip
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
        # A user of the tenant's on the target that neither the mirror nor the vendor knows
        # (left over from before the feed): only the vendor's "not found" may retire it.
        ghost = await target.create("Users", {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "externalId": f"{prefix}:user:ghost", "userName": "ghost", "active": True,
        })  # fmt: skip
        await target.aclose()
        # At the source, callbacks dropped: a department renamed, a hire, a leaver, a move.
        renamed = sim.departments[106]
        sim.departments[106] = SimDepartment(106, "改名的部门", renamed.parent_id, renamed.order)
        sim.create_user(SimUser("hire", "新人", (106,), 106))
        sim.delete_user("u00013")
        assert sim.users["u00014"].departments == (107,)
        sim.update_user("u00014", departments=(108,), main_department=108)
        drift = await differences(stack)
        assert len(drift) >= 6

        before = writes(stack)
        code, plan, err = await sync(stack, "--dry-run")
        assert code == 0, err
        assert writes(stack) == before  # planned, not made
        assert await differences(stack) == drift
        assert plan["counts"]["published"] == 3  # the renamed department, the hire, the move
        assert plan["counts"]["confirming"] == 1  # the leaver, for the resolver to confirm
        assert "confirm gone at the vendor: user u00013" in plan["plan"]
        assert any("POST /Users" in line and "u00011" in line for line in plan["plan"])

        code, done, err = await sync(stack)
        assert code == 0, err
        assert done["status"] == "succeeded", done["errors"]
        # The leaver (in the mirror, not in the walk) and the ghost (on the target only) were
        # both confirmed gone by the resolver reading the vendor, then retired by the SCIM sink.
        assert (done["counts"]["published"], done["counts"]["confirming"]) == (3, 2)
        assert done["counts"]["created"] == 1  # the user deleted by hand, from the mirror
        assert done["counts"]["updated"] >= 2  # the title, the Group's name
        # The ghost, never at the vendor, is not in the simulator's view: checked below.
        assert [d for d in await differences(stack) if not d.startswith("user ghost:")] == []
        assert (await mirror_converged(stack, timeout=5))[0] == []
        for userid in ("u00013", "ghost"):
            retired = [h for h in history(stack) if h["entity_id"] == userid]
            assert any(
                h["outcome"] == "applied"
                and h["change"] == "deleted"
                and ".directory/" in h["origin"]
                for h in retired
            ), retired  # a deletion record, applied by the SCIM sink
        target = ScimTarget(stack.scim_url, SCIM_TOKEN, 30.0)
        assert (await target.get("Users", ghost["id"]))["active"] is False
        await target.aclose()


async def test_callbacks_during_a_sync_through_the_feed_are_not_undone(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async for stack in make_stack(broker, scim_server, tmp_path, api_qps=FAST_API, extra_toml=FEED):
        sim = stack.sim
        assert isinstance(sim, WeComSimulator)
        populate(sim, users=600, departments=40, depth=4, seed=11)
        assert (await sync(stack))[0] == 0
        # The walk reads users in userid order; hold it once it has read 300 of them (but let
        # the resolver read the users the callbacks below are about).
        changed = frozenset({"u00010", "u00020", "u00030"})
        faults = stack.api.faults
        faults.pause_after("user/get", faults.calls["user/get"] + 300, exempt=changed)
        running = asyncio.create_task(sync(stack))
        await asyncio.wait_for(stack.api.faults.paused.wait(), 60)
        # Users the walk has read already change now, with callbacks: the walk holds their old
        # state, and the sync publishes it after the callbacks' records.
        changes = [
            sim.update_user("u00010", "full", name="改名后", position="新职位"),
            sim.update_user("u00020", "ids", departments=(102,), main_department=102),
            sim.delete_user("u00030"),
        ]
        async with httpx.AsyncClient() as client:
            for plaintext in changes:
                assert plaintext is not None
                assert (await post_callback(client, stack.receiver_url, sim, plaintext)).is_success
        await _applied(stack, {"u00010", "u00020", "u00030"})
        stack.api.faults.resume()

        code, outcome, err = await asyncio.wait_for(running, 240)
        assert code == 0, err
        assert outcome["status"] == "succeeded", outcome["errors"]
        remaining, _ = await wait_converged(sim, stack.scim_url, timeout=60)
        assert remaining == []
        assert (await mirror_converged(stack, timeout=5))[0] == []
        target = ScimTarget(stack.scim_url, SCIM_TOKEN, 30.0)
        prefix = f"wecom:{sim.corp_id}:user:"
        renamed = await target.find_one("Users", filter_eq("externalId", f"{prefix}u00010"))
        left = await target.find_one("Users", filter_eq("externalId", f"{prefix}u00030"))
        await target.aclose()
        assert renamed is not None
        assert (renamed["displayName"], renamed["title"]) == ("改名后", "新职位")
        assert left is None or left["active"] is False
        # The sync's stale records reached the SCIM sink after the callbacks' and were skipped.
        stale = [
            h
            for h in history(stack)
            if h["entity_id"] in changed and h["outcome"] == "skipped"
            and "older than the record applied" in (h.get("error") or h.get("detail") or "")
        ]  # fmt: skip
        assert {h["entity_id"] for h in stale} == changed, stale


async def _applied(stack: Stack, entity_ids: set[str], timeout: float = 60.0) -> None:
    """Wait until the SCIM sink has recorded an outcome for each of these entities."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if entity_ids <= {h["entity_id"] for h in history(stack)}:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the worker did not apply {sorted(entity_ids)}")


async def test_a_walk_failing_half_way_through_the_feed_publishes_and_writes_nothing(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async for stack in make_stack(
        broker, scim_server, tmp_path, ("dingtalk",), faulty_target=True, api_qps=FAST_API,
        extra_toml=FEED,
    ):  # fmt: skip
        sim = stack.sim
        assert isinstance(sim, DingTalkSimulator)
        populate(sim, users=150, departments=40, depth=4, seed=13)
        assert (await sync(stack))[0] == 0
        published = sorted(await read_topic(broker.bootstrap, f"{stack.topic}.directory", 1.0))
        for userid in ("u00001", "u00002", "u00003"):
            sim.delete_user(userid)  # leavers whose callbacks were lost
        stack.api.faults.fail_after("/topapi/v2/department/listsub", 20, -1)

        before = writes(stack)
        code, outcome, _ = await sync(stack)

        assert code == 1
        assert outcome["status"] == "failed"
        assert any("department walk failed" in e for e in outcome["errors"])
        assert writes(stack) == before
        now = sorted(await read_topic(broker.bootstrap, f"{stack.topic}.directory", 1.0))
        assert now == published  # nothing published
        shown = orgstream(stack, "mirror", "dump", "--tenant", tenant_of(sim), "--json")
        users = {u["userid"]: u for u in orjson.loads(shown.stdout)["users"]}
        assert all(users[u]["active"] for u in ("u00001", "u00002", "u00003"))


async def test_leavers_a_sync_finds_past_the_guard_are_held_and_retired_by_one_approval(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    """Five leavers whose callbacks were lost, a guard that lets three through: the sync's
    confirmations become deletion records, the SCIM sink holds two, the reconcile finds the
    same two still active and holds them as records too; one approval retires both."""
    guard = "[guard]\nmax_deletions = 3\nmax_deletion_percent = 100\nwindow_minutes = 60\n"
    async for stack in make_stack(
        broker, scim_server, tmp_path, ("dingtalk",), api_qps=FAST_API,
        extra_toml=FEED + guard, worker_toml="redrive_interval_seconds = 0.5\n",
    ):  # fmt: skip
        sim = stack.sim
        populate(sim, users=60, departments=6, depth=2, seed=5)
        assert (await sync(stack))[0] == 0
        leavers = [f"u{i:05d}" for i in range(1, 6)]
        for userid in leavers:
            sim.delete_user(userid)  # their callbacks were lost

        code, done, err = await sync(stack)
        assert code == 0, err
        assert done["counts"]["confirming"] == 5
        held = [p for p in parked(stack) if p["state"] == "held"]
        assert len({p["entity"] for p in held}) == 2, held
        assert len(await differences(stack)) == 2  # two leavers still active on the target

        tenant = tenant_of(sim)
        approved = orgstream(stack, "approve-deletions", "--tenant", tenant)
        assert approved.returncode == 0, approved.stderr
        assert (await wait_converged(sim, stack.scim_url, timeout=30))[0] == []
        deadline = time.monotonic() + 30
        while parked(stack):
            assert time.monotonic() < deadline, parked(stack)
            await asyncio.sleep(0.5)


def parked(stack: Stack) -> list[dict[str, Any]]:
    shown = orgstream(stack, "parked", "--json")
    assert shown.returncode == 0, shown.stderr
    return [orjson.loads(line) for line in shown.stdout.splitlines() if line.strip()]
