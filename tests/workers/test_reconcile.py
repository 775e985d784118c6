"""The full sync's bulk reconcile against scim2-server in-process and the simulated WeCom API:
an empty target becomes the source in every department mode, a second run writes nothing, and
drift of every kind is repaired in one run."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from schemas.config import GuardSettings
from schemas.event import ContactEvent
from schemas.types import DepartmentMode
from tests.workers.test_apply import CORP, Rig, make_rig, user
from workers.apply.guard import DeletionGuard
from workers.fullsync.counts import SyncCounts
from workers.fullsync.reconcile import Reconciler
from workers.scim.target import ENTERPRISE_USER, filter_eq
from workers.simulator.directory import SimDepartment
from workers.simulator.org import populate
from workers.simulator.views import scim_view, source_view
from workers.store.ledger import open_ledger
from workers.store.parking import open_parking
from workers.vendors.walk import WalkFailed, walk


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that reach the target, by method."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.methods: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.methods[request.method] += 1
        return await self.inner.handle_async_request(request)

    def writes(self) -> int:
        return sum(n for method, n in self.methods.items() if method != "GET")


async def counted_rig(mode: DepartmentMode) -> tuple[Rig, CountingTransport]:
    counting: list[CountingTransport] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        counting.append(CountingTransport(inner))
        return counting[0]

    return await make_rig(mode, wrap=wrap), counting[0]


async def sync(rig: Rig, run_id: str = "run-1", **options: object) -> SyncCounts:
    snapshot = await walk(rig.applier.source)
    return await Reconciler(rig.applier, snapshot, run_id, **options).run()  # type: ignore[arg-type]


async def differences(rig: Rig) -> list[str]:
    return source_view(rig.sim).differences(await scim_view(rig.target, "wecom", CORP))


@pytest.fixture(params=["nested", "flat", "extension"])
async def counted(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Rig, CountingTransport]]:
    rig, transport = await counted_rig(request.param)
    yield rig, transport
    await rig.target.aclose()


async def test_an_empty_target_becomes_the_source_and_a_second_run_writes_nothing(
    counted: tuple[Rig, CountingTransport],
) -> None:
    rig, transport = counted
    populate(rig.sim, users=60, departments=15, depth=5, seed=3)

    first = await sync(rig)
    assert (first.created, first.failed, first.errors) == (75, 0, [])
    assert await differences(rig) == []

    writes = transport.writes()
    second = await sync(rig, "run-2")
    assert second.to_dict() == {**SyncCounts().to_dict(), "unchanged": 75}
    assert transport.writes() == writes


async def test_one_run_repairs_drift_of_every_kind() -> None:
    rig, _ = await counted_rig("extension")
    populate(rig.sim, users=60, departments=12, depth=3, seed=5)
    await sync(rig)
    users = {u["externalId"].rpartition(":")[2]: u for u in await rig.target.list_all("Users")}
    groups = {g["externalId"].rpartition(":")[2]: g for g in await rig.target.list_all("Groups")}
    # By hand on the target: an edited user, a deleted user, an edited and a deleted Group,
    # a member taken out, and a user of nobody's directory put into a department Group.
    edits = [{"op": "replace", "path": p, "value": "x"} for p in ("displayName", "name.formatted")]
    await rig.target.patch("Users", users["u00001"]["id"], edits)
    await rig.target.delete("Users", users["u00002"]["id"])
    some, other = sorted(d for d in groups if d != "1")[:2]
    await rig.target.patch(
        "Groups", groups[some]["id"], [{"op": "replace", "path": "displayName", "value": "x"}]
    )
    await rig.target.delete("Groups", groups[other]["id"])
    member = next(u for u in rig.sim.users.values() if int(some) in u.departments)
    await rig.target.change_members(groups[some]["id"], [], [users[member.userid]["id"]])
    stranger = await rig.target.create(
        "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ext"}
    )
    await rig.target.change_members(groups[some]["id"], [{"value": stranger["id"]}], [])
    # At the source, with no callback: a renamed department, a hire, a leaver, a move.
    renamed = rig.sim.departments[int(other)]
    rig.sim.departments[renamed.id] = SimDepartment(renamed.id, "新名字", renamed.parent_id)
    rig.sim.users["hire1"] = user("hire1", int(some))
    rig.sim.departed["u00003"] = rig.sim.users.pop("u00003")
    moved = rig.sim.users["u00004"]
    rig.sim.users["u00004"] = user("u00004", int(other))
    assert moved.departments != (int(other),)
    assert await differences(rig) != []

    counts = await sync(rig, "run-2")

    assert await differences(rig) == []
    assert (counts.created, counts.deactivated, counts.failed) == (3, 1, 0)  # 2 users, 1 Group
    kept = next(g for g in await rig.target.list_all("Groups") if g["id"] == groups[some]["id"])
    assert stranger["id"] in {m["value"] for m in kept["members"]}  # not ours: left alone


async def test_managers_created_in_the_same_run_are_linked() -> None:
    rig, _ = await counted_rig("nested")
    rig.sim.departments[2] = SimDepartment(2, "研发", 1)
    rig.sim.users["boss"] = user("boss", 2)
    rig.sim.users["aaa"] = user("aaa", 2)
    rig.api.leaders["aaa"] = ["boss"]
    await sync(rig)
    boss = await rig.target.find_one("Users", filter_eq("externalId", f"wecom:{CORP}:user:boss"))
    aaa = await rig.target.find_one("Users", filter_eq("externalId", f"wecom:{CORP}:user:aaa"))
    assert boss is not None
    assert aaa is not None
    assert aaa[ENTERPRISE_USER]["manager"]["value"] == boss["id"]


async def test_mass_leavers_are_held_by_the_guard_not_deactivated(tmp_path: object) -> None:
    parking = open_parking(f"sqlite:///{tmp_path}/store.db")
    ledger = open_ledger(f"sqlite:///{tmp_path}/store.db")
    guard = DeletionGuard(GuardSettings(max_deletions=3), ledger, parking)
    rig = await make_rig("extension", guard=guard)
    populate(rig.sim, users=40, departments=6, depth=2, seed=9)
    await sync(rig)
    for userid in [f"u{i:05d}" for i in range(10)]:
        rig.sim.departed[userid] = rig.sim.users.pop(userid)
    held: list[ContactEvent] = []

    async def hold(event: ContactEvent, reason: str) -> None:
        held.append(event)

    counts = await sync(rig, "run-2", hold=hold)

    assert (counts.deactivated, counts.held) == (3, 7)
    deactivated = _deactivated(await rig.target.list_all("Users"))
    leavers = {f"u{i:05d}" for i in range(10)}
    assert len(deactivated) == 3
    assert deactivated < leavers
    assert {e.entity_id for e in held} == leavers - deactivated
    await parking.aclose()
    await ledger.aclose()


def _deactivated(users: list[dict[str, object]]) -> set[str]:
    return {str(u["userName"]) for u in users if u.get("active") is False}


async def test_entities_a_callback_touched_are_left_to_the_event_path() -> None:
    rig, _ = await counted_rig("extension")
    populate(rig.sim, users=20, departments=4, depth=2, seed=2)
    counts = await sync(rig, skip=frozenset({"user:u00001", "department:101"}))
    assert counts.deferred >= 2
    found = await rig.target.find_one("Users", filter_eq("externalId", f"wecom:{CORP}:user:u00001"))
    assert found is None


async def test_a_walk_that_fails_half_way_fails_whole() -> None:
    rig, transport = await counted_rig("extension")
    populate(rig.sim, users=50, departments=20, depth=3, seed=4)
    rig.api.faults.fail_after("department/get", 10, -1)
    with pytest.raises(WalkFailed, match="department walk failed"):
        await walk(rig.applier.source)
    assert transport.writes() == 0
