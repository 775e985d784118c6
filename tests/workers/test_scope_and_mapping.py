"""A target's scope and attribute mapping (docs/mapping.md), applied by the applier and the full
sync's reconcile to scim2-server in-process (with a company's own User extension loaded), the
source being the simulated WeCom API."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx

from schemas.config import GuardSettings, ScimSettings
from schemas.event import ContactEvent
from schemas.mapping.attributes import parse_mapping
from schemas.mapping.scope import Scope
from tests.scim_inprocess import scim_transport
from tests.workers.test_apply import CORP, Rig
from workers.apply.applier import TenantApplier
from workers.apply.guard import DeletionGuard
from workers.apply.mapping import Namespace
from workers.fullsync.counts import SyncCounts
from workers.fullsync.reconcile import HoldEvent, Reconciler
from workers.scim.planning import PlanningTarget
from workers.scim.target import ENTERPRISE_USER, ScimTarget, filter_eq
from workers.simulator.wecom import SimUser, WeComSimulator
from workers.simulator.wecom_api import WeComApi
from workers.store.ledger import open_ledger
from workers.store.ledger_in_memory import MemoryLedger, PlanningLedger
from workers.store.parking import open_parking
from workers.store.target_ledger import TargetLedger
from workers.vendors.walk import walk
from workers.vendors.wecom import WeComDirectory

CORP_USER = "urn:example:params:scim:schemas:extension:corp:2.0:User"


class Requests(httpx.AsyncBaseTransport):
    """Every request that reaches the target: (method, path)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    def writes(self) -> Counter[str]:
        return Counter(path for method, path in self.seen if method != "GET")


class Company:
    """A simulated WeCom company and one SCIM target, to which appliers of different
    configurations (a changed scope or mapping) are pointed in turn, sharing the ledger."""

    def __init__(self) -> None:
        self.sim = WeComSimulator(
            corp_id=CORP,
            token="token",
            encoding_aes_key="PmXxzdTxF1GShAbPOwFyKedNiamfzcaGHyusd3PgBBw",
            secret="secret",
        )
        self.api = WeComApi(self.sim)
        self.requests = Requests(scim_transport(corp_user=True))
        self.target = ScimTarget("http://scim.test/v2", None, 5.0, transport=self.requests)
        self.ledger: TargetLedger = MemoryLedger()

    def rig(
        self,
        scope: Scope | None = None,
        mapping: Mapping[str, str] | None = None,
        tables: Mapping[str, Any] | None = None,
        guard: DeletionGuard | None = None,
    ) -> Rig:
        settings = ScimSettings(
            department_mode="flat",
            scope=scope or Scope(),
            mapping=parse_mapping(mapping or {}, tables or {}, "scim.mapping"),
        )
        ns = Namespace("wecom", CORP, "acme", mapping=settings.mapping)
        source = WeComDirectory(
            "http://wecom.sim", CORP, "secret", transport=httpx.ASGITransport(app=self.api.app)
        )
        applier = TenantApplier(ns, settings, self.target, source, guard, self.ledger)
        return Rig(self.sim, self.api, self.target, applier)

    async def user(self, userid: str) -> dict[str, Any] | None:
        return await self.target.find_one(
            "Users", filter_eq("externalId", f"wecom:{CORP}:user:{userid}")
        )

    async def group_names(self) -> set[str]:
        groups = await self.target.list_all("Groups")
        return {str(g["displayName"]) for g in groups}

    async def members(self, display_name: str) -> set[str]:
        groups = await self.target.list_all("Groups")
        group = next(g for g in groups if g["displayName"] == display_name)
        users = {str(u["id"]): str(u["externalId"]).rpartition(":")[2] for u in await self.users()}
        return {users[str(m["value"])] for m in group.get("members", [])}

    async def users(self) -> list[dict[str, Any]]:
        return await self.target.list_all("Users")

    async def active(self) -> set[str]:
        return {
            str(u["externalId"]).rpartition(":")[2]
            for u in await self.users()
            if u.get("active") is not False
        }


async def reconcile(rig: Rig, run_id: str, hold: HoldEvent | None = None) -> SyncCounts:
    snapshot = await walk(rig.applier.source)
    return await Reconciler(rig.applier, snapshot, run_id, hold=hold).run()


def hire(sim: WeComSimulator, userid: str, *departments: int, **more: Any) -> None:
    sim.create_user(SimUser(userid, f"名{userid}", departments, departments[0], **more), "ids")


def org(sim: WeComSimulator) -> dict[str, int]:
    """1 总部 → 研发 (→ 平台, → 测试), 销售, 行政; a user or two in each."""
    ids: dict[str, int] = {}
    for name, parent in (("研发", "总部"), ("平台", "研发"), ("测试", "研发"), ("销售", "总部"),
                         ("行政", "总部")):  # fmt: skip
        sim.create_department(name, ids.get(parent, 1), "ids")
        ids[name] = max(sim.departments)
    hire(sim, "dev1", ids["研发"])
    hire(sim, "plat1", ids["平台"])
    hire(sim, "test1", ids["测试"])
    hire(sim, "sales1", ids["销售"])
    hire(sim, "admin1", ids["行政"])
    hire(sim, "both", ids["平台"], ids["行政"])  # in and out of scope at once
    return ids


# ---- scope -------------------------------------------------------------------------------


async def test_a_tenant_scoped_to_two_subtrees_syncs_exactly_those() -> None:
    company = Company()
    ids = org(company.sim)
    scope = Scope(include=frozenset({str(ids["研发"]), str(ids["销售"])}),
                  exclude=frozenset({str(ids["测试"])}))  # fmt: skip
    rig = company.rig(scope)

    counts = await reconcile(rig, "run-1")

    assert counts.failed == 0
    # The tops of the included subtrees are roots on the target; nothing above or beside them.
    assert await company.group_names() == {"研发", "研发/平台", "销售"}
    assert await company.active() == {"dev1", "plat1", "sales1", "both"}
    assert await company.members("研发/平台") == {"plat1", "both"}
    both = await company.user("both")
    assert both is not None
    assert both[ENTERPRISE_USER]["department"] == "平台"  # the main department in scope


async def test_moving_a_user_out_of_the_scope_deactivates_them() -> None:
    company = Company()
    ids = org(company.sim)
    rig = company.rig(Scope(include=frozenset({str(ids["研发"])})))
    await reconcile(rig, "run-1")
    assert await company.members("研发") == {"dev1"}

    await rig.play(company.sim.update_user("dev1", "ids", departments=(ids["销售"],),
                                           main_department=ids["销售"]))  # fmt: skip

    dev1 = await company.user("dev1")
    assert dev1 is not None
    assert dev1["active"] is False
    assert await company.members("研发") == set()
    # Back in scope: active again, in its department's Group.
    await rig.play(company.sim.update_user("dev1", "ids", departments=(ids["平台"],),
                                           main_department=ids["平台"]))  # fmt: skip
    assert "dev1" in await company.active()
    assert await company.members("研发/平台") == {"plat1", "both", "dev1"}


async def test_a_user_attribute_condition_keeps_others_out() -> None:
    company = Company()
    ids = org(company.sim)
    company.sim.update_user("dev1", "ids", custom=(("employment", "contractor"),))
    company.sim.update_user("plat1", "ids", custom=(("employment", "full-time"),))
    scope = Scope(users={"custom.employment": frozenset({"full-time"})})
    rig = company.rig(scope)
    await reconcile(rig, "run-1")
    assert await company.active() == {"plat1"}
    assert "总部/研发" in await company.group_names()  # departments are not filtered by it

    # Becoming full-time enters the scope with the user's next change.
    await rig.play(company.sim.update_user("dev1", "ids", custom=(("employment", "full-time"),)))
    assert await company.active() == {"plat1", "dev1"}
    assert await company.members("总部/研发") == {"dev1"}
    assert ids["研发"] in company.sim.departments


async def test_narrowing_the_scope_deprovisions_through_the_guard(tmp_path: object) -> None:
    company = Company()
    ids = org(company.sim)
    for n in range(6):
        hire(company.sim, f"s{n}", ids["销售"])
    await reconcile(company.rig(), "run-1")
    assert len(await company.active()) == 12
    parking = open_parking(f"sqlite:///{tmp_path}/store.db")
    ledger = open_ledger(f"sqlite:///{tmp_path}/store.db")
    guard = DeletionGuard(GuardSettings(max_deletions=3), ledger, parking)
    held: list[ContactEvent] = []

    async def hold(event: ContactEvent, reason: str) -> None:
        held.append(event)

    narrowed = company.rig(Scope(exclude=frozenset({str(ids["销售"])})), guard=guard)
    counts = await reconcile(narrowed, "run-2", hold=hold)

    # Seven users leave the scope: three go (the guard's limit), four wait for approval.
    assert (counts.deactivated, counts.held) == (3, 4)
    assert len(await company.active()) == 12 - 3
    assert {e.entity_id for e in held} < {"sales1", *(f"s{n}" for n in range(6))}
    await parking.aclose()
    await ledger.aclose()


async def test_widening_the_scope_is_planned_then_applied() -> None:
    """The dry run of a widened scope lists the additions; the run applies exactly those."""
    company = Company()
    ids = org(company.sim)
    await reconcile(company.rig(Scope(include=frozenset({str(ids["研发"])}))), "run-1")
    widened = Scope(include=frozenset({str(ids["研发"]), str(ids["行政"])}))
    before = len(company.requests.seen)

    planner = PlanningTarget("http://scim.test/v2", None, 5.0, transport=company.requests)
    source = company.rig().applier.source
    settings = ScimSettings(department_mode="flat", scope=widened)
    ns = Namespace("wecom", CORP, "acme")
    planning = TenantApplier(ns, settings, planner, source, None, PlanningLedger(company.ledger))
    await Reconciler(planning, await walk(source), "dry-run").run()
    plan = planner.take_plan()
    assert all(method == "GET" for method, _ in company.requests.seen[before:])  # wrote nothing
    assert any("POST /Groups" in step and "行政" in step for step in plan)
    assert any("POST /Users" in step and "admin1" in step for step in plan)
    assert await company.group_names() == {"研发", "研发/平台", "研发/测试"}

    await reconcile(company.rig(widened), "run-2")
    assert await company.group_names() == {"研发", "研发/平台", "研发/测试", "行政"}
    assert await company.members("行政") == {"admin1", "both"}


# ---- mapping -----------------------------------------------------------------------------

MAPPING = {
    "userName": '"{userid}@corp.example"',
    'phoneNumbers[type eq "work"]': "mobile",
    f"{ENTERPRISE_USER}:employeeNumber": "custom.工号",
    f"{CORP_USER}:costCenter": 'lookup(custom.部门代码, "centres")',
    f"{CORP_USER}:level": 'upper(default(custom.职级, "p0"))',
}
CENTRES = {"centres": {"RD": "CC-100", "SA": "CC-200"}}


async def test_a_mapping_feeds_user_name_phones_and_extension_attributes() -> None:
    company = Company()
    org(company.sim)
    company.sim.update_user(
        "dev1", "ids", mobile="13800000001",
        custom=(("工号", "A-0001"), ("部门代码", "RD"), ("职级", "p7")),
    )  # fmt: skip
    rig = company.rig(mapping=MAPPING, tables=CENTRES)
    await reconcile(rig, "run-1")

    dev1 = await company.user("dev1")
    assert dev1 is not None
    assert dev1["userName"] == "dev1@corp.example"
    assert {"value": "13800000001", "type": "work"} in [
        {k: p[k] for k in ("value", "type")} for p in dev1["phoneNumbers"]
    ]
    assert dev1[ENTERPRISE_USER]["employeeNumber"] == "A-0001"
    assert dev1[CORP_USER] == {"costCenter": "CC-100", "level": "P7"}
    plat1 = await company.user("plat1")
    assert plat1 is not None
    assert plat1[CORP_USER] == {"level": "P0"}  # no code: no cost centre, the default level

    # A change at the source goes through the mapping too.
    await rig.play(company.sim.update_user("plat1", "ids", custom=(("部门代码", "SA"),)))
    plat1 = await company.user("plat1")
    assert plat1 is not None
    assert plat1[CORP_USER]["costCenter"] == "CC-200"


async def test_a_mapping_change_costs_requests_only_for_users_it_changes() -> None:
    company = Company()
    org(company.sim)
    for userid, code in (("dev1", "RD"), ("plat1", "RD"), ("sales1", "SA")):
        company.sim.update_user(userid, "ids", custom=(("部门代码", code),))
    await reconcile(company.rig(mapping=MAPPING, tables=CENTRES), "run-1")
    ids_of = {u["userName"].partition("@")[0]: u["id"] for u in await company.users()}
    before = len(company.requests.seen)

    # Sales' cost centre is renumbered: only sales1's User changes.
    renumbered = {"centres": {"RD": "CC-100", "SA": "CC-201"}}
    counts = await reconcile(company.rig(mapping=MAPPING, tables=renumbered), "run-2")

    requests = company.requests.seen[before:]
    writes = [(method, path) for method, path in requests if method != "GET"]
    assert writes == [("PATCH", f"/v2/Users/{ids_of['sales1']}")]
    untouched = {i for userid, i in ids_of.items() if userid != "sales1"}
    assert not [path for _, path in requests if path.rpartition("/")[2] in untouched]
    assert counts.updated == 1
    sales1 = await company.user("sales1")
    assert sales1 is not None
    assert sales1[CORP_USER]["costCenter"] == "CC-201"


async def test_a_user_made_by_hand_under_the_mapped_user_name_is_adopted() -> None:
    company = Company()
    org(company.sim)
    made = await company.target.create(
        "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                  "userName": "dev1@corp.example"},
    )  # fmt: skip
    counts = await reconcile(company.rig(mapping=MAPPING, tables=CENTRES), "run-1")
    assert counts.failed == 0
    dev1 = await company.user("dev1")
    assert dev1 is not None
    assert dev1["id"] == made["id"]  # the same resource, now ours: no duplicate
    assert len(await company.users()) == 6


async def test_an_attribute_dropped_from_the_mapping_is_removed_by_mapping_it_to_nothing() -> None:
    """Dropping a key stops orgstream from setting it (the value written stays, docs/mapping.md);
    mapping it to "" removes it, with one PATCH per user that has it."""
    company = Company()
    org(company.sim)
    company.sim.update_user("dev1", "ids", custom=(("部门代码", "RD"),))
    await reconcile(company.rig(mapping=MAPPING, tables=CENTRES), "run-1")
    dropped = {k: v for k, v in MAPPING.items() if not k.endswith(":costCenter")}
    await reconcile(company.rig(mapping=dropped, tables=CENTRES), "run-2")
    dev1 = await company.user("dev1")
    assert dev1 is not None
    assert dev1[CORP_USER]["costCenter"] == "CC-100"  # left as written

    before = len(company.requests.seen)
    cleared = {**dropped, f"{CORP_USER}:costCenter": '""'}
    await reconcile(company.rig(mapping=cleared, tables=CENTRES), "run-3")
    writes = [path for method, path in company.requests.seen[before:] if method != "GET"]
    assert writes == [f"/v2/Users/{dev1['id']}"]
    dev1 = await company.user("dev1")
    assert dev1 is not None
    assert "costCenter" not in dev1.get(CORP_USER, {})


async def test_an_empty_mapped_user_name_falls_back_to_the_template() -> None:
    company = Company()
    org(company.sim)
    company.sim.update_user("dev1", "ids", alias="Dev One")
    counts = await reconcile(company.rig(mapping={"userName": "lower(alias)"}), "run-1")
    assert counts.failed == 0
    names = {str(u["externalId"]).rpartition(":")[2]: u["userName"] for u in await company.users()}
    assert names["dev1"] == "dev one"
    assert names["plat1"] == "plat1"  # no alias: the `user_name` template's "{userid}"


async def test_user_conditions_alone_leave_departments_as_the_source_has_them() -> None:
    """With no subtree chosen, the event path and the reconcile keep the same users: one whose
    department the walk did not see (an app's limited visibility) stays, as unscoped."""
    company = Company()
    ids = org(company.sim)
    scope = Scope(users={"active": frozenset({"true"})})
    rig = company.rig(scope)
    snapshot = await walk(rig.applier.source)
    del snapshot.departments[str(ids["行政"])]
    await Reconciler(rig.applier, snapshot, "run-1").run()
    assert "admin1" in await company.active()
    await rig.play(company.sim.update_user("admin1", "ids", name="改名"))
    assert "admin1" in await company.active()
