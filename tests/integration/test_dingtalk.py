"""DingTalk through the whole stack: receiver → Tansu → worker (enriching through the simulated
DingTalk API, via a forward proxy where configured) → scim2-server, each its own process."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import httpx
import pytest

from schemas.config import decode_aes_key
from schemas.vendors import crypto
from tests.integration.conftest import DIRECTORY_TOKEN, Broker, Stack, Target, make_stack
from tests.integration.directory_reading import wait_directory_converged
from tests.proxy import ForwardProxy
from workers.dev import devstack
from workers.dev.harness import post_callback, tenant_of, wait_converged
from workers.scim.target import ScimTarget
from workers.simulator.dingtalk import ROOT_ID, DingTalkSimulator, SimUser
from workers.simulator.dingtalk_api import DingTalkApi
from workers.simulator.scenarios import random_changes
from workers.simulator.views import scim_view
from workers.simulator.wecom import WeComSimulator

pytestmark = pytest.mark.integration


def dingtalk_of(stack: Stack) -> tuple[DingTalkSimulator, DingTalkApi, str]:
    for rig in stack.rigs:
        if isinstance(rig.sim, DingTalkSimulator):
            assert isinstance(rig.api, DingTalkApi)
            return rig.sim, rig.api, rig.scim_url
    raise AssertionError("no DingTalk tenant in this stack")


async def test_random_dingtalk_changes_in_both_payload_styles_reach_scim(
    broker: Broker, any_target: Target, tmp_path: Path
) -> None:
    async for stack in make_stack(
        broker,
        any_target.url,
        tmp_path,
        vendors=("dingtalk",),
        restrictive=any_target.restrictive,
        directory=True,
    ):
        sim, _, scim_url = dingtalk_of(stack)
        styles = set()
        async with httpx.AsyncClient(timeout=10) as client:
            handshake = await post_callback(client, stack.receiver_url, sim, sim.check_url())
            reply = handshake.json()
            key = decode_aes_key(sim.aes_key)
            assert crypto.decrypt(key, reply["encrypt"], sim.app_key) == b"success"
            for plaintext in random_changes(sim, random.Random(3), 40):
                styles.add("legacy" if b'"TimeStamp"' in plaintext else "subscription")
                response = await post_callback(client, stack.receiver_url, sim, plaintext)
                assert response.status_code == 200, response.text
                assert set(response.json()) == {"msg_signature", "timeStamp", "nonce", "encrypt"}
        assert styles == {"legacy", "subscription"}
        differences, view = await wait_converged(sim, scim_url)
        assert differences == []
        assert len(view.departments) > 1
        assert len(view.users) > 3
        # The same directory, read from `orgstream directory` by a SCIM client not ours.
        assert stack.directory_url is not None
        served, _ = await wait_directory_converged(
            sim, stack.directory_url, tenant_of(sim), DIRECTORY_TOKEN
        )
        assert served == []


@pytest.mark.parametrize("own_targets", [False, True], ids=["shared-target", "own-targets"])
async def test_wecom_and_dingtalk_tenants_side_by_side_with_a_proxy_for_dingtalk(
    broker: Broker, scim_server: str, tmp_path: Path, own_targets: bool
) -> None:
    """One receiver and one worker serve both tenants; each directory lands whole and apart
    (in one shared target, or in each tenant's own); every DingTalk API call went through the
    DingTalk tenant's proxy, and no WeCom call did."""
    async with ForwardProxy() as proxy:
        async for stack in make_stack(
            broker,
            scim_server,
            tmp_path,
            vendors=("wecom", "dingtalk"),
            proxies={"dingtalk": proxy.url},
            own_targets=own_targets,
        ):
            rng = random.Random(5)
            queues = [[(r.sim, p) for p in random_changes(r.sim, rng, 20)] for r in stack.rigs]
            changes = []
            while any(queues):  # interleave the vendors, each in its own order
                changes.append(rng.choice([q for q in queues if q]).pop(0))
            async with httpx.AsyncClient(timeout=10) as client:
                for sim, plaintext in changes:
                    response = await post_callback(client, stack.receiver_url, sim, plaintext)
                    assert response.status_code == 200, response.text
            for rig in stack.rigs:
                differences, view = await wait_converged(rig.sim, rig.scim_url)
                assert differences == [], rig.sim.vendor
                assert view.users
            dingtalk_sim, dingtalk_api, _ = dingtalk_of(stack)
            assert dingtalk_api.calls
            assert [c for c in dingtalk_api.calls if not c.via_proxy] == []
            assert len(proxy.seen) == len(dingtalk_api.calls)
            # gettoken, topapi/… for enrichment, call_back/… for the failed-callback recovery
            paths = ("/gettoken", "/topapi/", "/call_back/get_call_back_failed_result")
            assert all(seen.split()[1].startswith(paths) for seen in proxy.seen)
            wecom = next(r for r in stack.rigs if isinstance(r.sim, WeComSimulator))
            assert wecom.api.calls  # WeCom was called too, directly
            if own_targets:  # each target holds its own tenant only
                for rig in stack.rigs:
                    other = next(r for r in stack.rigs if r is not rig)
                    target = ScimTarget(rig.scim_url, "dev-scim-token", 10.0)
                    foreign = await scim_view(
                        target, other.sim.vendor, other.sim.corp_id, other.sim.department_number
                    )
                    await target.aclose()
                    assert foreign.users == {}
                    assert foreign.departments == {}
            assert dingtalk_sim.users


async def test_token_expiry_and_rate_limits_are_survived_and_recorded(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    """The simulator expires the token and throttles longer than the client's own backoff:
    the event is applied afterwards, and the sync history shows each retried step."""
    async for stack in make_stack(broker, scim_server, tmp_path, vendors=("dingtalk",)):
        sim, api, scim_url = dingtalk_of(stack)
        async with httpx.AsyncClient(timeout=10) as client:
            first = sim.create_user(SimUser("first", "先行", (ROOT_ID,), ROOT_ID))
            assert (await post_callback(client, stack.receiver_url, sim, first)).is_success
            assert (await wait_converged(sim, scim_url))[0] == []
            api.expire_tokens()
            api.throttle(3, 429)
            api.throttle(2, 90018)
            later = sim.create_user(SimUser("later", "后来", (ROOT_ID,), ROOT_ID, "工程师"))
            assert (await post_callback(client, stack.receiver_url, sim, later)).is_success
        differences, view = await wait_converged(sim, scim_url)
        assert differences == []
        assert view.users["later"][2] == "工程师"
        result = subprocess.run(
            [
                *devstack.orgstream_command(),
                "history",
                "--config",
                str(stack.config),
                "--entity-id",
                "later",
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=devstack.child_environment(),
        )
        [entry] = [json.loads(line) for line in result.stdout.splitlines()]
        assert entry["outcome"] == "applied"
        assert entry["tenant"] == "beta"
        retried = " | ".join(entry["retries"])
        assert "HTTP 429" in retried
        assert "errcode 90018 (rate limited)" in retried
        assert "errcode 42001: token renewed" in retried
        assert entry["attempts"] == 2  # the throttling outlasted the client's own three retries
        assert any(op.startswith("POST /Users") for op in entry["operations"])
