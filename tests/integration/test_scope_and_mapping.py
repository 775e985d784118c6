"""A target's scope and mapping end to end: `orgstream sync` and `orgstream worker` against
scim2-server with a company's own User extension loaded (a process of its own), the simulated
WeCom API and callbacks, with and without the directory feed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import Broker, Stack, make_stack, orgstream_async
from workers.dev.harness import SCIM_TOKEN, post_callback, tenant_of
from workers.scim.target import ENTERPRISE_USER, ScimTarget
from workers.simulator.wecom import SimUser, WeComSimulator

pytestmark = pytest.mark.integration
CORP_USER = "urn:example:params:scim:schemas:extension:corp:2.0:User"
RD, PLATFORM, SALES, ADMIN = 100, 101, 102, 103
SCOPE_AND_MAPPING = f"""
[scim.scope]
include_departments = [{RD}, {SALES}]

[scim.mapping]
userName = '"{{userid}}@corp.example"'
'phoneNumbers[type eq "work"]' = "mobile"
"{ENTERPRISE_USER}:employeeNumber" = "custom.工号"
"{CORP_USER}:costCenter" = 'lookup(custom.部门代码, "centres")'

[scim.mapping_tables.centres]
RD = "CC-100"
SA = "CC-200"
"""


def company(sim: WeComSimulator) -> None:
    for name, parent, department_id in (("研发", 1, RD), ("平台", RD, PLATFORM),
                                        ("销售", 1, SALES), ("行政", 1, ADMIN)):  # fmt: skip
        sim.create_department(name, parent, "ids", department_id=department_id)
    for userid, department, number, code in (
        ("dev1", RD, "A-1", "RD"), ("plat1", PLATFORM, "A-2", "RD"),
        ("sales1", SALES, "A-3", "SA"), ("admin1", ADMIN, "A-4", "AD"),
    ):  # fmt: skip
        custom = (("工号", number), ("部门代码", code))
        sim.create_user(
            SimUser(userid, f"名{userid}", (department,), department, mobile="138" + number[-1],
                    custom=custom), "ids",
        )  # fmt: skip


class Target:
    def __init__(self, url: str) -> None:
        self.url = url

    async def read(self) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
        """Users by userid, and each Group's users by userid (the dev stack's target keeps
        child Groups in their parent's, `department_mode = "nested"`)."""
        target = ScimTarget(self.url, SCIM_TOKEN, 10.0)
        try:
            users = await target.list_all("Users")
            groups = await target.list_all("Groups")
        finally:
            await target.aclose()
        by_id = {str(u["id"]): str(u["externalId"]).rpartition(":")[2] for u in users}
        members = {
            str(g["displayName"]): {
                by_id[str(m["value"])] for m in g.get("members", []) if str(m["value"]) in by_id
            }
            for g in groups
        }
        return {by_id[str(u["id"])]: u for u in users}, members

    async def wait_for(self, userid: str, check: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            users, _ = await self.read()
            if userid in users and check(users[userid]):
                return users[userid]
            assert time.monotonic() < deadline, f"{userid}: {users.get(userid)}"
            await asyncio.sleep(0.3)


async def sync(stack: Stack, *options: str) -> dict[str, Any]:
    code, out, err = await orgstream_async(
        stack, "sync", "--tenant", tenant_of(stack.sim), "--json", *options
    )
    assert code == 0, err
    outcome: dict[str, Any] = orjson.loads(out)
    assert outcome["status"] == "succeeded", outcome["errors"]
    return outcome


async def callback(stack: Stack, plaintext: bytes) -> None:
    async with httpx.AsyncClient() as client:
        answer = await post_callback(client, stack.receiver_url, stack.sim, plaintext)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("feed", [False, True], ids=["hints", "feed"])
async def test_scope_and_mapping_from_the_first_sync_to_a_widened_scope(
    broker: Broker, corp_scim_server: str, tmp_path: Path, feed: bool
) -> None:
    async for stack in make_stack(
        broker, corp_scim_server, tmp_path, ("wecom",), extra_toml=SCOPE_AND_MAPPING,
        api_qps=1000.0, directory=feed,
    ):  # fmt: skip
        sim = stack.sim
        assert isinstance(sim, WeComSimulator)
        company(sim)
        target = Target(stack.scim_url)

        # The first sync: the two subtrees and their users, mapped.
        await sync(stack)
        users, members = await target.read()
        assert set(members) == {"研发", "平台", "销售"}
        assert {u for u, r in users.items() if r["active"]} == {"dev1", "plat1", "sales1"}
        dev1 = users["dev1"]
        assert dev1["userName"] == "dev1@corp.example"
        assert {"value": "1381", "type": "work"} in [
            {"value": p["value"], "type": p["type"]} for p in dev1["phoneNumbers"]
        ]
        assert dev1[ENTERPRISE_USER]["employeeNumber"] == "A-1"
        assert dev1[CORP_USER]["costCenter"] == "CC-100"

        # A hire announced with every field but the custom ones: read at the vendor instead.
        await callback(stack, sim.create_user(
            SimUser("new1", "新人", (PLATFORM,), PLATFORM, custom=(("工号", "A-9"),)), "full"
        ))  # fmt: skip
        new1 = await target.wait_for("new1", lambda u: ENTERPRISE_USER in u)
        assert new1[ENTERPRISE_USER]["employeeNumber"] == "A-9"

        # Moved out of the scope: deactivated, out of its Group.
        await callback(
            stack, sim.update_user("sales1", "ids", departments=(ADMIN,), main_department=ADMIN)
        )
        await target.wait_for("sales1", lambda u: u["active"] is False)
        assert (await target.read())[1]["销售"] == set()

        # The scope widened: the dry run lists the additions and writes nothing.
        text = stack.config.read_text(encoding="utf-8")
        stack.config.write_text(
            text.replace(f"[{RD}, {SALES}]", f"[{RD}, {SALES}, {ADMIN}]"), encoding="utf-8"
        )
        plan = (await sync(stack, "--dry-run"))["plan"]
        assert any(s.startswith("POST /Groups") and "行政" in s for s in plan), plan
        assert any(s.startswith("POST /Users") and "admin1@corp.example" in s for s in plan)
        assert any(s.startswith("PATCH /Users") and "active" in s for s in plan)  # sales1
        assert "行政" not in (await target.read())[1]

        await sync(stack)
        users, members = await target.read()
        assert members["行政"] == {"admin1", "sales1"}
        assert users["sales1"]["active"] is True
        assert CORP_USER not in users["admin1"]  # "AD" has no cost centre: none is sent


async def test_a_mapping_into_an_attribute_the_target_lacks_stops_the_start(
    broker: Broker, corp_scim_server: str, tmp_path: Path
) -> None:
    bad = f'\n[scim.mapping]\n"{CORP_USER}:salary" = "custom.月薪"\n'
    async for stack in make_stack(broker, corp_scim_server, tmp_path, ("wecom",)):
        text = stack.config.read_text(encoding="utf-8")
        stack.config.write_text(text + bad, encoding="utf-8")
        code, _, err = await orgstream_async(stack, "sync", "--tenant", tenant_of(stack.sim))
        assert code != 0
        assert f"scim.mapping.{CORP_USER}:salary: {CORP_USER} has no attribute 'salary'" in err
