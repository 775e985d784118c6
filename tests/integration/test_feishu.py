"""Feishu end to end: its URL verification and random contact changes (users leaving and
re-entering the app's scope among them) through the receiver, the broker, the resolver and the
SCIM sink, on scim2-server and on the restrictive server. (Its 5,000-user full sync is in
test_full_sync_feed.py.)"""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import orjson
import pytest

from schemas.vendors import feishu
from tests.integration.conftest import Broker, Target, make_stack
from tests.integration.test_directory_feed import mirror_converged
from tests.proxy import ForwardProxy
from workers.dev.harness import callback_url, post_callback, wait_converged
from workers.simulator.feishu import FeishuSimulator
from workers.simulator.feishu_api import FeishuApi
from workers.simulator.scenarios import random_changes

pytestmark = pytest.mark.integration
FEED = "[feed]\nenabled = true\n"
NO_GUARD = "[guard]\nenabled = false\n"  # random histories delete freely


async def test_random_feishu_changes_converge_on_the_target_and_the_mirror(
    broker: Broker, any_target: Target, tmp_path: Path
) -> None:
    """Every Feishu API call goes through the tenant's forward proxy."""
    async with ForwardProxy() as proxy:
        async for stack in make_stack(
            broker,
            any_target.url,
            tmp_path,
            ("feishu",),
            proxies={"feishu": proxy.url},
            restrictive=any_target.restrictive,
            extra_toml=FEED + NO_GUARD,
        ):
            sim = stack.sim
            assert isinstance(sim, FeishuSimulator)
            changes = list(random_changes(sim, random.Random(19), 60))
            async with httpx.AsyncClient(timeout=10) as client:
                # Saving the callback URL in the console: Feishu sends the challenge, unsigned.
                challenge = sim.url_verification("a1b2c3")
                answered = await client.post(
                    callback_url(stack.receiver_url, sim, ""), content=challenge.body
                )
                assert answered.json() == {"challenge": "a1b2c3"}
                for plaintext in changes:
                    response = await post_callback(client, stack.receiver_url, sim, plaintext)
                    assert response.status_code == 200, response.text
            kinds = {orjson.loads(p)["header"]["event_type"] for p in changes}
            assert kinds == set(feishu.CONTACT_EVENT_TYPES)  # every one of them
            assert sim.scoped_out  # someone is out of the app's sight at the end
            left, _ = await wait_converged(sim, stack.scim_url, timeout=90)
            assert left == []
            assert (await mirror_converged(stack))[0] == []
            api = stack.rigs[0].api
            assert isinstance(api, FeishuApi)
            assert api.calls
            assert [c for c in api.calls if not c.via_proxy] == []
            assert all(seen.split()[1].startswith("/open-apis/") for seen in proxy.seen)
