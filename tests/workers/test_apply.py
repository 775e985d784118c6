"""The applier against scim2-server in-process and the simulated WeCom API: the target ends up
equal to the source, in every department mode and for both callback forms."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from schemas.config import GuardSettings, ScimSettings, Secret, TenantSettings
from schemas.mapping.attributes import unmanaged_attributes
from schemas.types import DepartmentMode, UserDeletePolicy
from schemas.vendors.wecom import normalize
from tests.scim_inprocess import scim_transport
from workers.apply import appliers as tenants
from workers.apply.applier import TenantApplier
from workers.apply.guard import DeletionGuard
from workers.apply.mapping import Namespace
from workers.errors import DependencyMissing, Held, RetryLater
from workers.scim.target import ENTERPRISE_USER, ScimTarget, filter_eq
from workers.simulator.scenarios import random_changes, scripted_day
from workers.simulator.views import scim_view, source_view
from workers.simulator.wecom import SimUser, WeComSimulator
from workers.simulator.wecom_api import WeComApi
from workers.store.ledger import open_ledger
from workers.store.parking import open_parking
from workers.vendors.wecom import WeComDirectory

CORP = "wwsimcorp0001"


@dataclass
class Rig:
    sim: WeComSimulator
    api: WeComApi
    target: ScimTarget
    applier: TenantApplier

    async def play(self, plaintext: bytes | None) -> None:
        if plaintext is None:
            return
        opened = normalize("acme", plaintext, received_at=0)
        for event in opened.events:
            await self.applier.apply(event)

    async def assert_converged(self) -> None:
        differences = source_view(self.sim).differences(await scim_view(self.target, "wecom", CORP))
        assert differences == []


async def make_rig(
    mode: DepartmentMode,
    user_delete: UserDeletePolicy = "deactivate",
    user_name: str = "{userid}",
    wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] = lambda t: t,
    guard: DeletionGuard | None = None,
) -> Rig:
    sim = WeComSimulator(
        corp_id=CORP,
        token="token",
        encoding_aes_key="PmXxzdTxF1GShAbPOwFyKedNiamfzcaGHyusd3PgBBw",
        secret="secret",
    )
    api = WeComApi(sim)
    source = WeComDirectory(
        "http://wecom.sim", CORP, "secret", transport=httpx.ASGITransport(app=api.app)
    )
    target = ScimTarget(
        "http://scim.test/v2", None, 5.0, transport=wrap(scim_transport(mode == "extension"))
    )
    settings = ScimSettings(department_mode=mode, user_delete=user_delete, user_name=user_name)
    ns = Namespace("wecom", CORP, "acme", user_name)
    return Rig(sim, api, target, TenantApplier(ns, settings, target, source, guard))


@pytest.fixture(params=["nested", "flat", "extension"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    made = await make_rig(request.param)
    yield made
    await made.target.aclose()


def user(userid: str, *departments: int, **more: object) -> SimUser:
    return SimUser(userid, f"名{userid}", departments, departments[0], **more)  # type: ignore[arg-type]


async def test_scripted_day_converges(rig: Rig) -> None:
    """Departments, members, a move, a rename, a userid change and a leaver, both forms."""
    for plaintext in scripted_day(rig.sim):
        await rig.play(plaintext)
    await rig.assert_converged()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_changes_converge(rig: Rig, seed: int) -> None:
    for plaintext in random_changes(rig.sim, random.Random(seed), 40):
        await rig.play(plaintext)
    await rig.assert_converged()


async def test_member_before_its_department_creates_the_department(rig: Rig) -> None:
    """An id-only member event whose department the target has never seen: fetched, not lost."""
    sim = rig.sim
    sim.create_department("深圳", 1, "ids")  # the department callback is lost
    sz = max(sim.departments)
    sim.create_department("深圳二部", sz, "ids")  # so is its child's
    await rig.play(sim.create_user(user("zhaoliu", sz + 1), "ids"))
    await rig.assert_converged()


async def test_replaying_every_event_twice_changes_nothing(rig: Rig) -> None:
    sim = rig.sim
    plaintexts = [sim.create_department("A", 1, "ids")]
    a = max(sim.departments)
    plaintexts.append(sim.create_user(user("u1", a), "ids"))
    plaintexts.append(sim.delete_user("u1"))
    for plaintext in plaintexts + plaintexts:
        await rig.play(plaintext)
    await rig.assert_converged()


async def test_department_delete_removes_the_group() -> None:
    rig = await make_rig("nested")
    await rig.play(rig.sim.create_department("临时", 1, "full"))
    temp = max(rig.sim.departments)
    await rig.play(rig.sim.delete_department(temp))
    groups = await rig.target.find("Groups", filter_eq("externalId", f"wecom:{CORP}:dept:{temp}"))
    assert groups == []
    await rig.assert_converged()


async def test_delete_policy_deletes_the_user() -> None:
    rig = await make_rig("nested", user_delete="delete")
    await rig.play(rig.sim.create_user(user("gone", 1), "full"))
    await rig.play(rig.sim.delete_user("gone"))
    assert await rig.target.find("Users", filter_eq("userName", "gone")) == []


async def test_manager_is_the_direct_leaders_target_id() -> None:
    rig = await make_rig("nested")
    await rig.play(rig.sim.create_user(user("boss", 1), "full"))
    event = normalize("acme", rig.sim.create_user(user("report", 1), "full"), 0).events[0]
    attributes = dict(event.attributes) | {"direct_leaders": ["boss"]}
    from dataclasses import replace

    await rig.applier.apply(replace(event, attributes=attributes))
    boss = await rig.target.find_one("Users", filter_eq("userName", "boss"))
    report = await rig.target.find_one("Users", filter_eq("userName", "report"))
    assert boss is not None
    assert report is not None
    assert report[ENTERPRISE_USER]["manager"]["value"] == boss["id"]
    assert report[ENTERPRISE_USER]["department"] == rig.sim.root_name


async def test_expired_token_is_refreshed_once() -> None:
    rig = await make_rig("nested")
    await rig.play(rig.sim.create_user(user("a1", 1), "ids"))
    rig.api.expire_tokens()
    await rig.play(rig.sim.update_user("a1", "ids", name="新名字"))
    assert rig.api.calls.count("gettoken") == 2
    await rig.assert_converged()


async def test_user_name_template_names_users_and_follows_a_userid_change() -> None:
    """`scim.user_name = "{userid}@{tenant}"`: two companies' "zhangsan" can share a target."""
    rig = await make_rig("nested", user_name="{userid}@{tenant}")
    await rig.play(rig.sim.create_user(user("zhangsan", 1), "full"))
    found = await rig.target.find_one("Users", filter_eq("userName", "zhangsan@acme"))
    assert found is not None
    await rig.play(rig.sim.rename_userid("zhangsan", "zhang.san", "ids"))
    renamed = await rig.target.find_one("Users", filter_eq("userName", "zhang.san@acme"))
    assert renamed is not None
    assert renamed["id"] == found["id"]
    await rig.assert_converged()


class Recorder(httpx.AsyncBaseTransport):
    """Every request the applier sends to the target, as "METHOD /path"."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path.removeprefix('/v2')}")
        return await self.inner.handle_async_request(request)


async def recorded_rig(mode: DepartmentMode = "nested") -> tuple[Rig, Recorder]:
    recorder: Recorder | None = None

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        nonlocal recorder
        recorder = Recorder(inner)
        return recorder

    rig = await make_rig(mode, wrap=wrap)
    assert recorder is not None
    return rig, recorder


async def by_hand(target: ScimTarget, kind: str, user_name: str, operations: list[object]) -> str:
    """Someone edits the target directly (an admin in the target's console)."""
    attribute = "userName" if kind == "Users" else "displayName"
    found = await target.find_one(kind, filter_eq(attribute, user_name))
    assert found is not None
    if operations:
        await target.patch(kind, found["id"], operations)  # type: ignore[arg-type]
    else:
        await target.delete(kind, found["id"])
    return str(found["id"])


async def test_an_update_is_one_patch_and_keeps_what_others_set_on_the_user() -> None:
    """The ledger knows the user and what was written to it: no lookup, no read, one PATCH of
    what changed; attributes orgstream does not own (set by hand) stay."""
    rig, recorder = await recorded_rig()
    await rig.play(rig.sim.create_user(user("li", 1), "full"))
    await by_hand(rig.target, "Users", "li", [{"op": "replace", "path": "nickName", "value": "改"}])
    recorder.sent.clear()
    await rig.play(rig.sim.update_user("li", "full", position="总监"))
    assert [r.rpartition("/")[0] for r in recorder.sent] == ["PATCH /Users"]
    found = await rig.target.find_one("Users", filter_eq("userName", "li"))
    assert found is not None
    assert (found["title"], found["nickName"]) == ("总监", "改")  # ours and theirs both kept
    await rig.assert_converged()


async def test_an_attribute_whose_field_is_kept_off_the_feed_is_left_to_the_target() -> None:
    """`[feed] exclude_fields = ["mobile"]`: the records carry no mobile, so orgstream neither
    sets phoneNumbers nor removes what the target holds, and still maintains the rest."""
    rig, recorder = await recorded_rig()
    ns = rig.applier.namespace
    unmanaged = Namespace(ns.vendor, ns.corp_id, ns.tenant, ns.user_name_template,
                          unmanaged_attributes(["mobile"]))  # fmt: skip
    rig.applier = TenantApplier(unmanaged, ScimSettings(), rig.target, rig.applier.source)
    await rig.play(rig.sim.create_user(user("li", 1, mobile="13800000000"), "full"))
    created = await rig.target.find_one("Users", filter_eq("userName", "li"))
    assert created is not None
    assert "phoneNumbers" not in created
    phones = [{"value": "010-1", "type": "work"}]
    await by_hand(
        rig.target, "Users", "li", [{"op": "add", "path": "phoneNumbers", "value": phones}]
    )
    recorder.sent.clear()
    await rig.play(rig.sim.update_user("li", "full", position="总监", mobile="13900000000"))
    assert [r.rpartition("/")[0] for r in recorder.sent] == ["PATCH /Users"]
    found = await rig.target.find_one("Users", filter_eq("userName", "li"))
    assert found is not None
    assert found["title"] == "总监"
    assert [p["value"] for p in found["phoneNumbers"]] == ["010-1"]  # the target's own


async def test_a_hire_into_a_known_department_is_one_post_and_one_patch() -> None:
    """The ledger knows the tenant's whole footprint (the target was read once, at the first
    event): an externalId it does not know is new, so no lookup precedes the POST."""
    rig, recorder = await recorded_rig("flat")
    await rig.play(rig.sim.create_department("研发", 1, "full"))
    rd = max(rig.sim.departments)
    recorder.sent.clear()
    await rig.play(rig.sim.create_user(user("li", rd), "full"))
    assert [r.split("/")[:2] for r in recorder.sent] == [["POST ", "Users"], ["PATCH ", "Groups"]]
    await rig.assert_converged()


async def test_an_empty_ledger_in_front_of_a_populated_target_adopts_what_is_there() -> None:
    """An upgrade, or a lost store: a fresh ledger reads the tenant's footprint once, adopts
    every resource by externalId and creates nothing twice."""
    rig, recorder = await recorded_rig("flat")
    for userid in ("li", "wang"):
        await rig.play(rig.sim.create_user(user(userid, 1), "full"))
    rig.applier = TenantApplier(
        rig.applier.namespace, ScimSettings(department_mode="flat"), rig.target, rig.applier.source
    )  # the same target and source; a ledger that knows nothing
    recorder.sent.clear()
    await rig.play(rig.sim.update_user("li", "full", position="总监"))
    await rig.play(rig.sim.create_user(user("zhao", 1), "full"))
    writes = [r.split("/")[:2] for r in recorder.sent if not r.startswith("GET")]
    assert writes == [["PATCH ", "Users"], ["POST ", "Users"], ["PATCH ", "Groups"]]
    assert len(await rig.target.find("Users", filter_eq("userName", "li"))) == 1
    await rig.assert_converged()


async def test_an_unchanged_user_costs_no_request() -> None:
    rig, recorder = await recorded_rig()
    await rig.play(rig.sim.create_user(user("li", 1), "full"))
    changed = rig.sim.update_user("li", "full", position="总监")
    await rig.play(changed)
    recorder.sent.clear()
    await rig.play(changed)  # delivered again (a replay, a redelivery)
    assert recorder.sent == []


async def test_a_user_deleted_by_hand_is_created_again_by_the_next_event() -> None:
    """404 on the ledger's id: forgotten, looked up once, created again, memberships too."""
    rig, _ = await recorded_rig()
    await rig.play(rig.sim.create_user(user("li", 1), "full"))
    gone = await by_hand(rig.target, "Users", "li", [])
    await rig.play(rig.sim.update_user("li", "full", position="总监"))
    found = await rig.target.find_one("Users", filter_eq("userName", "li"))
    assert found is not None
    assert found["id"] != gone
    assert found["title"] == "总监"
    await rig.assert_converged()


async def test_a_group_deleted_by_hand_is_created_again_by_the_next_member_event() -> None:
    """The next event that needs the Group recreates it; the members it lost come back with
    their own next event (or the reconcile, which re-asserts every membership)."""
    rig, _ = await recorded_rig()
    sim = rig.sim
    await rig.play(sim.create_department("研发", 1, "full"))
    rd = max(sim.departments)
    await rig.play(sim.create_user(user("li", rd), "full"))
    gone = await by_hand(rig.target, "Groups", "研发", [])
    await rig.play(sim.create_user(user("wang", rd), "full"))
    (again,) = await rig.target.find("Groups", filter_eq("displayName", "研发"))
    assert again["id"] != gone
    wang = await rig.target.find_one("Users", filter_eq("userName", "wang"))
    assert wang is not None
    assert [m["value"] for m in again["members"]] == [wang["id"]]
    await rig.play(sim.update_user("li", "full", position="工程师"))
    await rig.assert_converged()


async def test_the_guard_holds_the_deactivation_past_the_limit_and_nothing_else(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    ledger, parking = open_ledger(store), open_parking(store)
    guard = DeletionGuard(GuardSettings(max_deletions=2, max_deletion_percent=100), ledger, parking)
    rig = await make_rig("nested", guard=guard)
    for userid in ("a", "b", "c", "d"):
        await rig.play(rig.sim.create_user(user(userid, 1), "full"))
    await rig.play(rig.sim.delete_user("a"))
    await rig.play(rig.sim.delete_user("b"))
    late = normalize("acme", rig.sim.delete_user("c"), received_at=0).events[0]
    with pytest.raises(Held, match="user deletion 3 of acme"):
        await rig.applier.apply(late)
    (held_user,) = await rig.target.find("Users", filter_eq("userName", "c"))
    assert held_user["active"] is True  # untouched while held
    await rig.play(rig.sim.update_user("d", "full", position="组长"))  # other changes flow
    (d,) = await rig.target.find("Users", filter_eq("userName", "d"))
    assert d["title"] == "组长"
    await rig.applier.apply(late, deletions_approved=True)  # what approval re-drives
    await rig.assert_converged()
    await ledger.aclose()
    await parking.aclose()


async def test_a_member_waits_for_a_department_a_tenant_without_api_cannot_fetch() -> None:
    """No API credentials: a full-field member event for a department the target has not seen
    cannot be completed yet. It must wait (parked), never land without its department."""
    rig = await make_rig("nested")
    tenant = TenantSettings(
        id="acme",
        vendor="wecom",
        corp_id=CORP,
        callback_token=Secret("t"),
        aes_key=b"k" * 32,
        api_base="http://unused",
    )
    no_api = TenantApplier(
        Namespace("wecom", CORP, "acme"),
        ScimSettings(department_mode="nested"),
        rig.target,
        tenants.open_vendor_source(tenant),
    )
    department = rig.sim.create_department("新部门", 1, "full")
    member = rig.sim.create_user(user("early", max(rig.sim.departments)), "full")
    (member_event,) = normalize("acme", member, received_at=0).events
    with pytest.raises(DependencyMissing, match="has no API credentials"):
        await no_api.apply(member_event)
    assert await rig.target.find("Users", filter_eq("userName", "early")) == []
    for event in normalize("acme", department, received_at=0).events:
        await no_api.apply(event)
    await no_api.apply(member_event)  # the re-drive
    differences = source_view(rig.sim).differences(await scim_view(rig.target, "wecom", CORP))
    # Without the API the root's name is unknowable: its Group bears the tenant id.
    assert differences == ["department 1: ('总部', 0) != ('acme', 0)"]


class RacingCreator(httpx.AsyncBaseTransport):
    """Another writer provisioning the same person: just before our POST /Users arrives, it
    creates that user itself, so ours gets 409 uniqueness."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.armed = False
        self.answers: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.armed and request.method == "POST" and request.url.path.endswith("/Users"):
            self.armed = False
            theirs = httpx.Request("POST", request.url, content=await request.aread())
            await (await self.inner.handle_async_request(theirs)).aread()
        response = await self.inner.handle_async_request(request)
        self.answers.append((request.method, request.url.path, response.status_code))
        return response


async def test_a_409_on_create_adopts_the_winners_resource_and_never_posts_again() -> None:
    racer: RacingCreator | None = None

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        nonlocal racer
        racer = RacingCreator(inner)
        return racer

    rig = await make_rig("nested", wrap=wrap)
    assert racer is not None
    await rig.play(rig.sim.create_department("研发", 1, "full"))
    racer.armed = True
    await rig.play(rig.sim.create_user(user("race", max(rig.sim.departments)), "full"))
    posts = [s for method, path, s in racer.answers if method == "POST" and "/Users" in path]
    assert posts == [409]  # ours lost the race, and was not sent again
    assert len(await rig.target.find("Users", filter_eq("userName", "race"))) == 1
    await rig.assert_converged()  # the adopted user got its memberships all the same


async def test_a_user_created_by_hand_is_matched_by_user_name_and_adopted() -> None:
    rig = await make_rig("nested")
    mine = await rig.target.create(
        "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "hand"}
    )
    await rig.play(rig.sim.create_user(user("hand", 1), "full"))
    (adopted,) = await rig.target.find("Users", filter_eq("userName", "hand"))
    assert adopted["id"] == mine["id"]
    assert adopted["externalId"] == f"wecom:{CORP}:user:hand"
    await rig.assert_converged()


class CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.patches: list[int] = []  # operations per Group PATCH

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and "/Groups/" in request.url.path:
            self.patches.append(len(orjson.loads(await request.aread())["Operations"]))
        return await self.inner.handle_async_request(request)


async def test_a_big_membership_diff_lands_whole_in_patches_of_at_most_100() -> None:
    counting = CountingTransport(scim_transport())
    target = ScimTarget("http://scim.test/v2", None, 5.0, transport=counting)
    core_user = "urn:ietf:params:scim:schemas:core:2.0:User"
    users = [
        (await target.create("Users", {"schemas": [core_user], "userName": f"m{i}"}))["id"]
        for i in range(250)
    ]
    group = await target.create(
        "Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "大"}
    )
    await target.change_members(group["id"], [{"value": u, "type": "User"} for u in users], [])
    await target.change_members(group["id"], [], users[:120])
    assert counting.patches == [100, 100, 50, 100, 20]
    members = (await target._request("GET", f"/Groups/{group['id']}")).get("members", [])
    assert sorted(m["value"] for m in members) == sorted(users[120:])
    await target.aclose()


class SchemasDown(httpx.AsyncBaseTransport):
    """/Schemas answers 503 while `down` is set; everything else passes through."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and request.url.path.endswith("/Schemas"):
            return httpx.Response(503, headers={"retry-after": "0"})
        return await self.inner.handle_async_request(request)


async def test_auto_mode_is_decided_only_once_the_target_has_listed_its_schemas() -> None:
    """A failed /Schemas read must not leave "auto" undecided-but-cached: every later
    department would then be created without its parent."""
    schemas_down: SchemasDown | None = None

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        nonlocal schemas_down
        schemas_down = SchemasDown(inner)
        return schemas_down

    rig = await make_rig("auto", wrap=wrap)
    assert schemas_down is not None
    created = rig.sim.create_department("研发", 1, "full")
    with pytest.raises(RetryLater, match="503"):
        await rig.play(created)
    schemas_down.down = False
    await rig.play(created)  # the retry, as the consumer would send it
    await rig.play(rig.sim.create_department("后端", max(rig.sim.departments), "full"))
    assert await rig.applier.department_mode() == "flat"
    await rig.assert_converged()


async def test_a_leaver_whose_group_was_deleted_by_hand_is_deprovisioned(tmp_path: Path) -> None:
    """The guard admits the deactivation, the Group PATCH meets a 404, the event is applied
    once more and asks the guard again: it finishes (it used to wait for itself forever)."""
    store = f"sqlite:///{tmp_path / 'state.db'}"
    guard = DeletionGuard(GuardSettings(), open_ledger(store), open_parking(store))
    rig = await make_rig("flat", guard=guard)
    await rig.play(rig.sim.create_department("研发", 1, "full"))
    rd = max(rig.sim.departments)
    for userid in ("a", "b", "c", "d", "e", "f"):
        await rig.play(rig.sim.create_user(user(userid, rd), "full"))
    (group,) = await rig.target.find("Groups", filter_eq("displayName", "总部/研发"))
    await rig.target.delete("Groups", group["id"])
    async with asyncio.timeout(30):  # a hang is the failure; this is no timing
        await rig.play(rig.sim.delete_user("a"))
    (left,) = await rig.target.find("Users", filter_eq("userName", "a"))
    assert left["active"] is False
