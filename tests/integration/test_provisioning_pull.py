"""The pull mode against real processes: a scim2-server holding 2,000 users in 100 Groups is
the source, `orgstream sync --to-vendor` (a process of its own) makes the simulated WeCom equal
to it, through the provisioning path; a dry run first writes nothing; then changes at the source
and another pull."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import (
    PROVISIONING_TOKEN,
    Broker,
    Stack,
    make_stack,
    orgstream_async,
)
from workers.dev.harness import SCIM_TOKEN
from workers.simulator.wecom import WeComSimulator
from workers.simulator.wecom_api import WeComApi

pytestmark = pytest.mark.integration
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
USERS, GROUPS = 2000, 100


@pytest.fixture
async def source_url(scim_server: str) -> str:
    return f"{scim_server}/pull-{secrets.token_hex(4)}/v2"


@pytest.fixture
async def stack(
    broker: Broker, scim_server: str, source_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    keys = (f'provisioning_source = "{source_url}"\nprovisioning_source_token = "{SCIM_TOKEN}"\n'
            "provisioning_source_minutes = 0")  # fmt: skip
    async for made in make_stack(
        broker, scim_server, tmp_path, ("wecom",), directory=True, mirror_in="directory",
        provisioning=True, tenant_keys=keys, api_qps=2000,
    ):  # fmt: skip
        assert isinstance(made.api, WeComApi)
        made.api.notify_with(None)  # the pull is under test here, not the callbacks' path
        yield made


async def seed(source: httpx.AsyncClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """USERS users, 8 requests at a time, then GROUPS Groups of USERS // GROUPS members each."""
    limit = asyncio.Semaphore(8)

    async def post(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        async with limit:
            answer = await source.post(endpoint, json=body)
        assert answer.status_code == 201, answer.text
        made: dict[str, Any] = answer.json()
        return made

    users = await asyncio.gather(*(
        post("Users", {"schemas": [CORE_USER], "userName": f"user{n:04d}",
                       "displayName": f"User {n}",
                       "emails": [{"value": f"user{n:04d}@corp.example", "type": "work"}]})
        for n in range(USERS)
    ))  # fmt: skip
    size = USERS // GROUPS
    groups = []  # one at a time: scim2-server drops connections under concurrent Group writes
    for g in range(GROUPS):
        members = [{"value": u["id"]} for u in users[g * size : (g + 1) * size]]
        body = {"schemas": [CORE_GROUP], "displayName": f"Team {g:03d}", "members": members}
        groups.append(await post("Groups", body))
    return list(users), list(groups)


async def source_state(source: httpx.AsyncClient) -> dict[str, tuple[str, frozenset[str]]]:
    """userName → (displayName, the names of the Groups listing the user)."""
    users: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for endpoint, found in (("Users", users), ("Groups", groups)):
        while True:
            page = (
                await source.get(endpoint, params={"startIndex": len(found) + 1, "count": 500})
            ).json()
            found += page.get("Resources", [])
            if not page.get("Resources") or len(found) >= page["totalResults"]:
                break
    member_of: dict[str, set[str]] = defaultdict(set)
    for group in groups:
        for member in group.get("members") or []:
            member_of[member["value"]].add(group["displayName"])
    return {u["userName"]: (u["displayName"], frozenset(member_of[u["id"]])) for u in users}


def vendor_state(sim: WeComSimulator) -> dict[str, tuple[str, frozenset[str]]]:
    names = {d.id: d.name for d in sim.departments.values()}
    return {
        u.userid: (u.name, frozenset(names[d] for d in u.departments if d != 1))
        for u in sim.users.values()
        if u.status == 1
    }


async def test_a_pull_makes_the_vendor_equal_to_the_source(stack: Stack, source_url: str) -> None:
    sim = stack.sim
    assert isinstance(sim, WeComSimulator)
    headers = {"Authorization": f"Bearer {SCIM_TOKEN}"}
    async with httpx.AsyncClient(base_url=f"{source_url}/", headers=headers, timeout=30) as source:
        users, groups = await seed(source)

        code, out, err = await orgstream_async(stack, "sync", "--tenant", "acme", "--to-vendor",
                                               "--dry-run", "--json")  # fmt: skip
        assert code == 0, err
        planned = json.loads(out)
        assert planned["counts"] == {"departments created": GROUPS, "users created": USERS}
        assert sim.users == {}
        assert list(sim.departments) == [1]  # the dry run wrote nothing

        code, out, err = await orgstream_async(stack, "sync", "--tenant", "acme", "--to-vendor")
        assert code == 0, out + err
        assert vendor_state(sim) == await source_state(source)

        # Changes at the source: a rename, moves, leavers, hires, a Group dropped.
        rng = random.Random(20)
        renamed = groups[0]
        answer = await source.put(
            f"Groups/{renamed['id']}", json={**renamed, "displayName": "Team Renamed"}
        )
        assert answer.status_code == 200, answer.text
        dropped = groups[1]
        assert (await source.delete(f"Groups/{dropped['id']}")).status_code == 204
        for leaver in rng.sample(users[40:], 5):
            assert (await source.delete(f"Users/{leaver['id']}")).status_code == 204
        for n in range(USERS, USERS + 5):
            body = {"schemas": [CORE_USER], "userName": f"user{n:04d}", "displayName": f"New {n}",
                    "phoneNumbers": [{"value": f"1380000{n:04d}", "type": "mobile"}]}  # fmt: skip
            assert (await source.post("Users", json=body)).status_code == 201

        code, out, err = await orgstream_async(stack, "sync", "--tenant", "acme", "--to-vendor",
                                               "--dry-run")  # fmt: skip
        assert code == 0, err
        assert "update department Team Renamed" in out
        assert "create user user2004" in out

        code, out, err = await orgstream_async(stack, "sync", "--tenant", "acme", "--to-vendor")
        assert code == 0, out + err
        assert vendor_state(sim) == await source_state(source)
        assert "Team 001" not in {d.name for d in sim.departments.values()}

    # A tenant that pulls takes no pushes: two masters would undo each other's writes.
    async with httpx.AsyncClient() as client:
        pushed = await client.post(
            f"{stack.directory_url}/scim/v2/acme/Users",
            json={"schemas": [CORE_USER], "userName": "pushed"},
            headers={"Authorization": f"Bearer {PROVISIONING_TOKEN}"},
        )
    assert pushed.status_code == 405
    assert "pulls" in pushed.json()["detail"]
