"""`orgstream dlq`: a permanently failing event is dead-lettered with its error while the
partition moves on; once the cause is fixed, `dlq redrive` puts it back and it is applied."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.config import load_settings
from schemas.topics import dead_letter_topic
from tests.integration.conftest import Broker, Stack, make_stack, orgstream, read_topic
from workers.dev.harness import SCIM_TOKEN, post_callback, wait_converged
from workers.scim.target import CORE_USER, ScimTarget, filter_eq
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


async def test_with_the_feed_the_sinks_dead_letter_is_listed_and_redriven_as_a_fresh_hint(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    """With the directory feed on, the SCIM sink dead-letters records on its own topic:
    `dlq list` shows them there, and `dlq redrive` sends a hint about the entity (never the old
    record onto the compacted feed), so the resolver reads the vendor again."""
    async for stack in make_stack(broker, scim_server, tmp_path,
                                  extra_toml="[feed]\nenabled = true\n"):  # fmt: skip
        target = ScimTarget(stack.scim_url, SCIM_TOKEN, 10.0)
        squatter = await target.create(
            "Users", {"schemas": [CORE_USER], "userName": "taken", "externalId": "ldap:taken"}
        )
        async with httpx.AsyncClient(timeout=10) as client:
            plaintext = stack.sim.create_user(SimUser("taken", "占用", (ROOT_ID,), ROOT_ID), "full")
            assert (
                await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            ).is_success

        deadline = time.monotonic() + 30
        while not _listed(stack):
            assert time.monotonic() < deadline, "nothing was dead-lettered"
            await asyncio.sleep(0.5)
        [dead] = _listed(stack)
        kafka = load_settings(stack.config).kafka
        sink_topic = dead_letter_topic(kafka.directory_topic, kafka.consumer_group)
        assert dead["topic"] == sink_topic
        assert dead["position"].startswith(f"{sink_topic}:")
        assert (dead["tenant"], dead["entity_id"], dead["change"]) == ("acme", "taken", "record")
        assert "409 uniqueness" in dead["error"] or "belongs to" in dead["error"]

        await target.delete("Users", squatter["id"])  # the operator fixes the cause
        redriven = orgstream(stack, "dlq", "redrive", "--record", dead["position"])
        assert redriven.returncode == 0, redriven.stderr
        (user,) = await _eventually_one(target, "taken")
        assert user["externalId"].endswith(":user:taken")
        await target.aclose()
        hints = await read_topic(stack.bootstrap, stack.topic)
        assert len(hints) == 2  # the callback's hint, and the one the re-drive sent


def _listed(stack: Stack) -> list[dict[str, Any]]:
    shown = orgstream(stack, "dlq", "list", "--json")
    assert shown.returncode == 0, shown.stderr
    return [json.loads(line) for line in shown.stdout.splitlines()]


async def _eventually_one(target: ScimTarget, user_name: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        found = await target.find("Users", filter_eq("userName", user_name))
        if found:
            return found
        assert time.monotonic() < deadline, f"{user_name} never reached the target"
        await asyncio.sleep(0.5)
