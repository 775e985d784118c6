"""Several `orgstream worker` processes in one group, as deploy/ runs them (replicas: 3): they
start together on a fresh PostgreSQL store, share a burst of id-only hires into departments the
target has never seen (the members' callbacks before the departments' own), and create nothing
twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import httpx

from tests.integration.conftest import Broker, Stack, make_stack, orgstream
from tests.stores import postgres_store_url
from workers.dev.harness import SCIM_TOKEN, post_callback, wait_converged
from workers.scim.target import ScimTarget
from workers.simulator.wecom import SimUser, WeComSimulator

HIRES = 240
DEPARTMENTS = 35


async def test_three_workers_started_together_create_nothing_twice(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    async with postgres_store_url() as store:
        async for stack in make_stack(
            broker, scim_server, tmp_path, store=store, workers=3, partitions=6
        ):
            await burst_of_hires_before_their_departments(stack)
            differences, _ = await wait_converged(stack.sim, stack.scim_url, timeout=120)
            assert differences == []
            assert [p.poll() for p in stack.processes] == [None] * 4  # every process is up
            external_ids = await external_ids_on_target(stack.scim_url)
            assert [e for e, n in external_ids.items() if n > 1] == []
            assert len(external_ids) == HIRES + DEPARTMENTS + 1  # and the root department
            dead = orgstream(stack, "history", "--outcome", "dead_lettered", "--json")
            assert dead.returncode == 0, dead.stderr
            assert dead.stdout.strip() == ""


async def burst_of_hires_before_their_departments(stack: Stack) -> None:
    sim = stack.sim
    assert isinstance(sim, WeComSimulator)
    rng = random.Random(17)
    department_callbacks = []
    for index in range(DEPARTMENTS):
        parent = rng.choice(list(sim.departments))
        department_callbacks.append(sim.create_department(f"部{index}", parent, "ids"))
    departments = [d for d in sim.departments if d != 1]
    hires = []
    for i in range(HIRES):
        department = rng.choice(departments)
        hires.append(
            sim.create_user(SimUser(f"h{i:03d}", f"新人{i}", (department,), department), "ids")
        )
    gate = asyncio.Semaphore(16)

    async def send(client: httpx.AsyncClient, plaintext: bytes) -> None:
        async with gate:
            response = await post_callback(client, stack.receiver_url, sim, plaintext)
            assert response.is_success, response.text

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(send(client, p) for p in hires))
        await asyncio.gather(*(send(client, p) for p in department_callbacks))


async def external_ids_on_target(scim_url: str) -> Counter[str]:
    target = ScimTarget(scim_url, SCIM_TOKEN, 30.0)
    counted: Counter[str] = Counter()
    try:
        for kind in ("Users", "Groups"):
            counted.update(str(r.get("externalId")) for r in await target.list_all(kind))
    finally:
        await target.aclose()
    return counted
