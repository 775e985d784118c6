"""The applier against a target as little capable as the least capable real ones
(tests/restrictive_scim.py): single `eq` filters, no membership filters or reads, no nested
Groups, no ETags, no sort, pages of 100. The source still ends up on the target."""

from __future__ import annotations

import random

import httpx
import pytest

from schemas.config import ScimSettings
from schemas.vendors.wecom import normalize
from tests.restrictive_scim import RestrictiveScim
from workers.apply.applier import TenantApplier
from workers.apply.mapping import Namespace
from workers.fullsync.counts import SyncCounts
from workers.fullsync.reconcile import Reconciler
from workers.scim.target import ScimTarget
from workers.simulator.org import populate
from workers.simulator.scenarios import random_changes, scripted_day
from workers.simulator.views import scim_view, source_view
from workers.simulator.wecom import SimUser, WeComSimulator
from workers.simulator.wecom_api import WeComApi
from workers.vendors.walk import walk
from workers.vendors.wecom import WeComDirectory

CORP = "wwrestricted01"
BASE = "http://restrictive.test/acme/v2"


class Rig:
    def __init__(self, fixed_group_names: bool = False) -> None:
        self.server = RestrictiveScim(fixed_group_names=fixed_group_names)
        self.refused: list[str] = []
        self.sim = WeComSimulator(
            corp_id=CORP,
            token="token",
            encoding_aes_key="PmXxzdTxF1GShAbPOwFyKedNiamfzcaGHyusd3PgBBw",
            secret="secret",
        )
        api = WeComApi(self.sim)
        source = WeComDirectory(
            "http://wecom.sim", CORP, "secret", transport=httpx.ASGITransport(app=api.app)
        )
        self.target = ScimTarget(BASE, None, 5.0, transport=self._watching())
        ns = Namespace("wecom", CORP, "acme")
        self.applier = TenantApplier(ns, ScimSettings(), self.target, source)

    def _watching(self) -> httpx.AsyncBaseTransport:
        inner = httpx.ASGITransport(app=self.server.app)
        refused = self.refused

        class Watching(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                response = await inner.handle_async_request(request)
                if response.status_code == 400:
                    refused.append(f"{request.method} {request.url}")
                return response

        return Watching()

    async def play(self, plaintext: bytes | None) -> None:
        if plaintext is not None:
            for event in normalize("acme", plaintext, received_at=0).events:
                await self.applier.apply(event)

    async def assert_converged(self, refusals: int = 0) -> None:
        # Read back through the inspection header, which shows Group members.
        inspector = ScimTarget(
            BASE,
            None,
            5.0,
            transport=httpx.ASGITransport(app=self.server.app),
        )
        inspector._http.headers["X-Inspect"] = "1"
        view = await scim_view(inspector, "wecom", CORP)
        assert source_view(self.sim).differences(view) == []
        # Nothing was asked the way this target cannot answer (but the renames it refuses).
        assert len(self.refused) == refusals, self.refused


def user(userid: str, *departments: int) -> SimUser:
    return SimUser(userid, f"名{userid}", departments, departments[0])


async def test_a_scripted_day_converges_on_the_least_capable_target() -> None:
    rig = Rig()
    for plaintext in scripted_day(rig.sim):
        await rig.play(plaintext)
    await rig.assert_converged()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_changes_converge_on_the_least_capable_target(seed: int) -> None:
    rig = Rig()
    for plaintext in random_changes(rig.sim, random.Random(seed), 60):
        await rig.play(plaintext)
    await rig.assert_converged()


async def test_auto_mode_is_flat_where_the_extension_is_not_advertised() -> None:
    rig = Rig()
    sim = rig.sim
    await rig.play(sim.create_department("研发", 1, "full"))
    rd = max(sim.departments)
    await rig.play(sim.create_department("平台", rd, "full"))
    await rig.play(sim.create_user(user("li", rd + 1), "ids"))
    names = sorted(g["displayName"] for g in rig.server.stores["acme"].resources["Groups"].values())
    assert names == ["总部", "总部/研发", "总部/研发/平台"]
    await rig.assert_converged()


async def test_a_department_renamed_where_groups_cannot_be_renamed_is_a_new_group() -> None:
    """Atlassian cannot rename a synced Group: the rename is refused once, and the department
    becomes a new Group under its new name with the same members (its subdepartment's too, in
    flat mode, where the parent's name is part of the child's), the old ones deleted."""
    rig = Rig(fixed_group_names=True)
    sim = rig.sim
    await rig.play(sim.create_department("研发", 1, "full"))
    rd = max(sim.departments)
    await rig.play(sim.create_department("平台", rd, "full"))
    for userid, department in (("li", rd), ("wang", rd), ("zhao", rd + 1)):
        await rig.play(sim.create_user(user(userid, department), "full"))
    groups = rig.server.stores["acme"].resources["Groups"]
    before = {g["displayName"]: g["id"] for g in groups.values()}

    await rig.play(sim.rename_department(rd, "研究院", "full"))

    after = {g["displayName"]: g["id"] for g in groups.values()}
    assert sorted(after) == ["总部", "总部/研究院", "总部/研究院/平台"]
    assert after["总部"] == before["总部"]  # untouched
    assert before["总部/研发"] not in after.values()  # replaced, not left behind
    assert before["总部/研发/平台"] not in after.values()
    await rig.assert_converged(refusals=2)  # the department's and its child's renames


async def test_a_full_sync_fills_it_and_a_membership_removed_by_hand_comes_back() -> None:
    """The reconcile lists every page (no `sw` filter), cannot read members back, and so
    re-asserts the memberships the ledger says it owns: a member removed by hand returns."""
    rig = Rig()
    populate(rig.sim, users=150, departments=12, depth=3, seed=5)  # more than a page of 100
    first = await sync(rig)
    assert (first.failed, first.errors) == (0, [])
    await rig.assert_converged()
    store = rig.server.stores["acme"]
    members = next(m for m in store.members.values() if m)
    members.remove(members[0])  # by hand, in the target's own console
    again = await sync(rig, "run-2")
    assert (again.created, again.failed) == (0, 0)
    await rig.assert_converged()


async def sync(rig: Rig, run_id: str = "run-1") -> SyncCounts:
    snapshot = await walk(rig.applier.source)
    return await Reconciler(rig.applier, snapshot, run_id).run()
