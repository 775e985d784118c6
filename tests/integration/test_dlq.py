"""`orgstream dlq`: a permanently failing event is dead-lettered with its error while the
partition moves on; once the cause is fixed, `dlq redrive` puts it back and it is applied."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.conftest import Stack, orgstream
from workers.dev.harness import SCIM_TOKEN, post_callback, wait_converged
from workers.scim.target import CORE_USER, ScimTarget
from workers.simulator.wecom import ROOT_ID, SimUser

pytestmark = pytest.mark.integration


async def test_dead_letter_is_listed_and_redriven_after_the_cause_is_fixed(
    stack_on_each_store: Stack,
) -> None:
    """On SQLite and on PostgreSQL: the history shows the failure with its detail, then the
    redriven success."""
    stack = stack_on_each_store
    target = ScimTarget(stack.scim_url, SCIM_TOKEN, 10.0)
    squatter = await target.create(
        "Users", {"schemas": [CORE_USER], "userName": "taken", "externalId": "ldap:taken"}
    )
    async with httpx.AsyncClient(timeout=10) as client:
        for user in (
            SimUser("taken", "占用", (ROOT_ID,), ROOT_ID),
            SimUser("fine", "正常", (ROOT_ID,), ROOT_ID),
        ):
            plaintext = stack.sim.create_user(user, "full")
            assert (
                await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            ).is_success
    differences, view = await wait_converged(stack.sim, stack.scim_url, timeout=20)
    assert "fine" in view.users  # the partition moved on past the failure
    assert [d for d in differences if d.startswith("user taken")] == differences

    listed = orgstream(stack, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [dead] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (dead["tenant"], dead["entity_id"], dead["change"]) == ("acme", "taken", "created")
    assert "409 uniqueness" in dead["error"]
    assert dead["origin"].startswith(f"{stack.topic}/")

    history = orgstream(stack, "history", "--entity-id", "taken", "--json")
    [failed] = [json.loads(line) for line in history.stdout.splitlines()]
    assert failed["outcome"] == "dead_lettered"
    assert "userName 'taken' belongs to 'ldap:taken'" in failed["error"]

    assert orgstream(stack, "dlq", "redrive").returncode == 2  # nothing chosen, nothing done
    await target.delete("Users", squatter["id"])  # the operator fixes the cause
    await target.aclose()
    redriven = orgstream(stack, "dlq", "redrive", "--record", dead["position"])
    assert redriven.returncode == 0, redriven.stderr
    assert "1 dead letter(s) put back" in redriven.stdout
    assert (await wait_converged(stack.sim, stack.scim_url))[0] == []
    history = orgstream(stack, "history", "--entity-id", "taken", "--json")
    outcomes = [json.loads(line)["outcome"] for line in history.stdout.splitlines()]
    assert outcomes == ["applied", "dead_lettered"]
