"""What the worker does when applying cannot go on: a target that refuses us is quarantined
and its events parked until it recovers; a mass deactivation is held until an operator
approves it, while every other change keeps flowing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Broker, Stack, make_stack, orgstream
from workers.dev.harness import SCIM_TOKEN, post_callback, wait_converged
from workers.scim.target import ScimTarget, filter_eq
from workers.simulator.wecom import ROOT_ID, SimUser

pytestmark = pytest.mark.integration

FAST_REDRIVE = """
retries_before_parking = 1
redrive_interval_seconds = 0.5
quarantine_probe_seconds = 1
"""
GUARD = """
[guard]
max_deletions = 3
max_deletion_percent = 100
window_minutes = 60
"""


@pytest.fixture
async def faulty_stack(broker: Broker, scim_server: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async for made in make_stack(
        broker,
        scim_server,
        tmp_path,
        faulty_target=True,
        worker_toml=FAST_REDRIVE,
        extra_toml=GUARD,
    ):
        yield made


async def send(stack: Stack, *plaintexts: bytes) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for plaintext in plaintexts:
            response = await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            assert response.is_success, response.text


def json_lines(stack: Stack, *args: str) -> list[dict[str, Any]]:
    result = orgstream(stack, *args, "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line]


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.5)


def staff(userid: str) -> SimUser:
    return SimUser(userid, f"员工{userid}", (ROOT_ID,), ROOT_ID)


async def test_a_refusing_target_is_quarantined_and_its_events_parked_until_it_recovers(
    faulty_stack: Stack,
) -> None:
    stack, faults = faulty_stack, faulty_stack.faults
    assert faults is not None
    await send(stack, stack.sim.create_user(staff("before"), "full"))
    assert (await wait_converged(stack.sim, stack.scim_url))[0] == []

    faults.refuse(401)  # the target's credentials expired
    await send(stack, *(stack.sim.create_user(staff(f"during{i}"), "ids") for i in range(3)))

    def parked_while_quarantined() -> bool:
        waiting = json_lines(stack, "parked")
        return len(waiting) == 3 and all("quarantined" in p["reason"] for p in waiting)

    await eventually(parked_while_quarantined)
    parked = json_lines(stack, "history", "--outcome", "parked")
    assert {p["entity_id"] for p in parked} == {"during0", "during1", "during2"}
    assert all("401" in p["error"] for p in parked)
    calls_while_refused = faults.injected[401]
    await asyncio.sleep(3)  # quarantined: the worker only probes, about once a second
    assert faults.injected[401] - calls_while_refused <= 5

    faults.heal()
    assert (await wait_converged(stack.sim, stack.scim_url, timeout=30))[0] == []
    await eventually(lambda: json_lines(stack, "parked") == [])
    history = json_lines(stack, "history", "--entity-id", "during1")
    assert [h["outcome"] for h in history] == ["applied", "parked"]
    assert history[0]["retries"][0].startswith("parked since")


async def test_a_mass_deactivation_is_held_until_approved_and_nothing_else_waits(
    faulty_stack: Stack,
) -> None:
    stack, sim = faulty_stack, faulty_stack.sim
    await send(stack, *(sim.create_user(staff(f"u{i}"), "full") for i in range(8)))
    assert (await wait_converged(stack.sim, stack.scim_url))[0] == []

    # One burst of callbacks: six leavers (the guard allows three), a change and a new hire.
    leavers = [f"u{i}" for i in range(6)]
    await send(
        stack,
        *(sim.delete_user(userid) for userid in leavers),
        sim.update_user("u7", "ids", position="组长"),
        sim.create_user(staff("newcomer"), "ids"),
    )

    def three_held() -> bool:
        return len(json_lines(stack, "parked", "--state", "held")) == 3

    await eventually(three_held)
    differences, view = await wait_converged(stack.sim, stack.scim_url, timeout=5)
    assert view.users["u7"][2] == "组长"  # the change was applied
    assert "newcomer" in view.users  # and so was the new hire
    still_active = sorted(u for u in leavers if view.users[u][1])
    assert len(still_active) == 3  # three deactivated, three held
    assert len(differences) == 3
    held = json_lines(stack, "history", "--outcome", "held")
    assert sorted(h["entity_id"] for h in held) == still_active
    reasons = sorted(h["error"] for h in held)
    assert "would be user deletion 4 of acme" in reasons[-1]  # the one that tripped it
    assert "max_deletions = 3" in reasons[-1]
    assert all("has deletions held for approval" in r for r in reasons[:-1])  # and after it

    dry = orgstream(stack, "approve-deletions", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "3 event(s) waiting" in dry.stdout
    approved = orgstream(stack, "approve-deletions", "--tenant", "acme")
    assert approved.returncode == 0, approved.stderr
    assert "released 3 held deletion(s) of acme" in approved.stdout
    assert (await wait_converged(stack.sim, stack.scim_url, timeout=30))[0] == []
    async with httpx.AsyncClient():
        target = ScimTarget(stack.scim_url, SCIM_TOKEN, 10.0)
        for userid in still_active:
            (user,) = await target.find("Users", filter_eq("userName", userid))
            assert user["active"] is False
        await target.aclose()


async def test_a_worker_killed_with_a_membership_change_unsent_adds_it_after_restart(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    """The hire's user is created, its Group PATCH is on the way (held at the target's door),
    and the worker is SIGKILLed: the record was not committed, so the next worker applies it
    again and the membership reaches the target."""
    async for stack in make_stack(broker, scim_server, tmp_path, faulty_target=True):
        await kill_while_a_membership_is_on_the_way(stack)


async def kill_while_a_membership_is_on_the_way(stack: Stack) -> None:
    faults = stack.faults
    assert faults is not None
    sim = stack.sim
    await send(stack, sim.create_user(staff("first"), "full"))
    assert (await wait_converged(sim, stack.scim_url))[0] == []
    faults.hold("PATCH", "/Groups/")
    await send(stack, sim.create_user(staff("hire"), "full"))
    await eventually(lambda: faults.held > 0)
    stack.restart_worker(kill=True)
    faults.release()  # the killed worker's PATCH never reached the target
    differences, view = await wait_converged(sim, stack.scim_url)
    assert differences == []
    assert view.users["hire"][-1] == (ROOT_ID,)  # in its department's Group


async def test_hints_parked_before_the_feed_is_switched_on_are_resolved_after_it(
    faulty_stack: Stack,
) -> None:
    """Upgrading in place with events still parked: once the worker runs the feed, a parked
    hint is handed to the resolver (its history says so) and reaches the target as a record."""
    stack, faults = faulty_stack, faulty_stack.faults
    assert faults is not None
    faults.refuse(401)
    await send(stack, *(stack.sim.create_user(staff(f"during{i}"), "ids") for i in range(3)))
    await eventually(lambda: len(json_lines(stack, "parked")) == 3)

    text = stack.config.read_text(encoding="utf-8")
    stack.config.write_text(text.replace("[worker]\n", "[feed]\nenabled = true\n\n[worker]\n", 1))
    faults.heal()
    stack.restart_worker()

    assert (await wait_converged(stack.sim, stack.scim_url, timeout=60))[0] == []
    await eventually(lambda: json_lines(stack, "parked") == [])
    history = json_lines(stack, "history", "--entity-id", "during1")
    outcomes = [(h["outcome"], h["origin"]) for h in reversed(history)]  # oldest first
    assert outcomes[0][0] == "parked"
    handed = [h for h in history if h["outcome"] == "skipped"]
    assert handed, history
    assert "handed to the resolver" in handed[0]["error"]
    assert any(o == "applied" and ".directory/" in origin for o, origin in outcomes), outcomes
