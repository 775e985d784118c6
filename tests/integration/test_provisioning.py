"""Provisioning into WeCom with every part a process of its own: an IdP's request sequences
(Entra ID's, Okta's) against `orgstream directory`, the simulated WeCom calling the receiver
back after each write, the worker carrying those callbacks to the SCIM target. The vendor
ends as the IdP intended, the mirror agrees, and the callbacks that echo our writes cause no
further write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.integration.conftest import (
    DIRECTORY_TOKEN,
    PROVISIONING_TOKEN,
    Broker,
    Stack,
    make_stack,
    orgstream,
)
from tests.provision.sequences import replay
from workers.dev.harness import wait_converged
from workers.simulator.wecom import WeComSimulator

pytestmark = pytest.mark.integration
WRITES = {"user/create", "user/update", "user/delete", "department/create",
          "department/update", "department/delete"}  # fmt: skip


@pytest.fixture
async def stack(broker: Broker, scim_server: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async for made in make_stack(
        broker, scim_server, tmp_path, directory=True, mirror_in="directory", provisioning=True
    ):
        yield made


def sender(client: httpx.AsyncClient, stack: Stack) -> Any:
    async def send(method: str, path: str, body: Any) -> httpx.Response:
        return await client.request(
            method,
            f"{stack.directory_url}/scim/v2/acme/{path}",
            json=body,
            headers={"Authorization": f"Bearer {PROVISIONING_TOKEN}"},
        )

    return send


async def served_users(client: httpx.AsyncClient, stack: Stack) -> dict[str, tuple[str, bool]]:
    answer = await client.get(
        f"{stack.directory_url}/scim/v2/acme/Users",
        headers={"Authorization": f"Bearer {DIRECTORY_TOKEN}"},
    )
    return {u["userName"]: (u["displayName"], u["active"]) for u in answer.json()["Resources"]}


def vendor_users(sim: WeComSimulator) -> dict[str, tuple[str, bool]]:
    """Disabled users are served inactive; those the IdP deleted are not served at all."""
    return {u.userid: (u.name, u.status == 1) for u in sim.users.values()}


def write_calls(stack: Stack) -> int:
    return sum(1 for call in stack.api.calls if call in WRITES)


@pytest.mark.parametrize("idp", ["entra", "okta"])
async def test_an_idp_sequence_ends_at_the_vendor_and_echoes_nothing_back(
    stack: Stack, idp: str
) -> None:
    sim = stack.sim
    assert isinstance(sim, WeComSimulator)
    async with httpx.AsyncClient(timeout=30) as client:
        await replay(idp, sender(client, stack))
        writes = write_calls(stack)
        assert writes > 0

        # The vendor's callbacks reach the target through receiver, resolver and worker.
        differences, _ = await wait_converged(sim, stack.scim_url, timeout=90)
        assert differences == []
        # The mirror the server reads agrees with the vendor.
        assert await served_users(client, stack) == vendor_users(sim)
        await asyncio.sleep(2)  # long enough for any echo to come back as a write
        assert write_calls(stack) == writes

    history = orgstream(stack, "history", "--tenant", "acme", "--limit", "500", "--json")
    assert history.returncode == 0, history.stderr
    rows = [json.loads(line) for line in history.stdout.splitlines() if line.strip()]
    provisioned = [r for r in rows if r["origin"] == "provisioning"]
    from_callbacks = [r for r in rows if r["origin"] != "provisioning"]
    assert provisioned
    assert all(r["outcome"] == "applied" for r in provisioned)
    assert from_callbacks  # the echoes were applied to the target, as changes of the vendor


async def test_scim2_tester_crud_and_patch_checks_pass(stack: Stack) -> None:
    """Every crud and patch check passes, but for what the server derives and a PATCH cannot
    set: the Group extension (where a department sits, made by the vendor) and a member's
    `display` (the user's own name). Those fail the way the note on issue 20 says."""

    def run() -> list[tuple[str, str, str]]:
        with httpx2.Client(
            base_url=f"{stack.directory_url}/scim/v2/acme/",
            headers={"Authorization": f"Bearer {PROVISIONING_TOKEN}"},
            timeout=30,
        ) as http:
            client = SyncSCIMClient(http)
            client.discover()
            results = check_server(client, include_tags={"crud", "patch"})
        return [(r.status.name, str(r.title), str(r.reason)) for r in results]

    results = await asyncio.to_thread(run)
    ran = [r for r in results if r[0] != Status.SKIPPED.name]
    failed = [r for r in ran if r[0] != Status.SUCCESS.name]
    derived = ("'members'", "'urn:ietf:params:scim:schemas:extension:orgstream:2.0:Group'")
    assert [r for r in failed if not r[2].split("\n")[0].endswith(derived)
            and not r[2].split("\n")[0].rstrip(".").endswith(derived)] == []  # fmt: skip
    assert all(r[1].startswith(("check_add", "check_remove", "check_replace")) for r in failed)
    assert len(ran) - len(failed) >= 40
