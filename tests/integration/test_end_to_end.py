"""Acceptance 3 and 4: WeCom changes through the receiver over HTTP, the Tansu broker, the
worker and scim2-server, each its own process; the SCIM directory ends equal to the source."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.integration.conftest import DIRECTORY_TOKEN, Broker, Stack, Target, make_stack
from tests.integration.directory_reading import wait_directory_converged
from workers.dev import devstack
from workers.dev.harness import post_callback, tenant_of, wait_converged, wait_until_up
from workers.simulator.scenarios import random_changes
from workers.simulator.wecom import ROOT_ID, SimUser

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack_on_any_target(
    broker: Broker, any_target: Target, tmp_path: Path
) -> AsyncIterator[Stack]:
    """A WeCom stack writing to scim2-server, then to the restrictive server; in the second,
    `orgstream directory` keeps the mirror (`[feed] mirror_in = "directory"`)."""
    mirror_in = "directory" if any_target.restrictive else "worker"
    async for made in make_stack(
        broker, any_target.url, tmp_path, restrictive=any_target.restrictive, directory=True,
        mirror_in=mirror_in,
    ):  # fmt: skip
        yield made


@pytest.mark.parametrize("seed", [7, 11])
async def test_random_changes_reach_scim(stack_on_any_target: Stack, seed: int) -> None:
    """35 random changes in both callback forms; attributes, active flags, hierarchy and
    memberships on the target equal the simulator's directory."""
    stack = stack_on_any_target
    async with httpx.AsyncClient(timeout=10) as client:
        for plaintext in random_changes(stack.sim, random.Random(seed), 35):
            response = await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            assert response.status_code == 200, response.text
    differences, view = await wait_converged(stack.sim, stack.scim_url)
    assert differences == []
    assert len(view.departments) > 1
    assert view.users
    # The same directory, read from `orgstream directory` by a SCIM client not ours.
    assert stack.directory_url is not None
    served, _ = await wait_directory_converged(
        stack.sim, stack.directory_url, tenant_of(stack.sim), DIRECTORY_TOKEN
    )
    assert served == []
    # The mirror's stage ran in the process `mirror_in` names, and only there.
    host = "directory" if 'mirror_in = "directory"' in stack.config.read_text() else "worker"
    for process in ("worker", "directory"):
        log = (stack.workdir / f"{process}.log").read_text(encoding="utf-8")
        assert ("-mirror" in log and "stage_started" in log) == (process == host), process


async def test_broker_outage_answers_503_then_the_retry_is_applied(
    scim_server: str, tmp_path: Path
) -> None:
    """No broker ack: 503 so WeCom retries. The identical retry succeeds once the broker is back,
    and the change reaches the target."""
    broker = Broker(devstack.free_port(), tmp_path / "broker")
    try:
        async for stack in make_stack(broker, scim_server, tmp_path):
            sim = stack.sim
            async with httpx.AsyncClient(timeout=15) as client:
                plaintext = sim.create_user(SimUser("before", "之前", (ROOT_ID,), ROOT_ID), "ids")
                assert (await post_callback(client, stack.receiver_url, sim, plaintext)).is_success
                assert (await wait_converged(sim, stack.scim_url))[0] == []

                broker.process.kill()
                during = sim.signed_request(
                    sim.create_user(SimUser("during", "期间", (ROOT_ID,), ROOT_ID), "full")
                )
                url = f"{stack.receiver_url}/callbacks/wecom/acme?{during.query_string}"
                refused = await client.post(url, content=during.body)
                assert refused.status_code == 503
                assert (await client.get(f"{stack.receiver_url}/readyz")).status_code == 503

                broker.start()  # Tansu keeps nothing: the topics come back empty
                await devstack.create_topics(broker.bootstrap, [stack.topic, f"{stack.topic}.dlq"])
                await wait_until_up(f"{stack.receiver_url}/readyz")
                # WeCom retries a non-200 up to 3 times with the identical request. Tansu may
                # refuse the first produce after a restart (an object-store race it answers with
                # UNKNOWN_SERVER_ERROR), which is one more 503 the vendor's retries absorb.
                statuses = []
                for _ in range(3):
                    statuses.append((await client.post(url, content=during.body)).status_code)
                    if statuses[-1] == 200:
                        break
                assert statuses[-1] == 200, statuses
                assert set(statuses[:-1]) <= {503}
            differences, view = await wait_converged(sim, stack.scim_url, timeout=90)
            assert differences == []
            assert view.users["during"][1] is True
    finally:
        broker.process.stop()


async def test_poison_record_is_dead_lettered_and_the_partition_moves_on(stack: Stack) -> None:
    """A record that is not a contact event goes to the DLQ with its error; the events after it
    on the same partition are still applied."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(stack.topic, b"{not json", key=b"acme:user:zz", partition=0)
    finally:
        await producer.stop()
    async with httpx.AsyncClient(timeout=10) as client:
        plaintext = stack.sim.create_user(SimUser("after", "之后", (ROOT_ID,), ROOT_ID), "ids")
        assert (await post_callback(client, stack.receiver_url, stack.sim, plaintext)).is_success
    assert (await wait_converged(stack.sim, stack.scim_url))[0] == []
    consumer = AIOKafkaConsumer(
        f"{stack.topic}.dlq",
        bootstrap_servers=stack.bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    headers = dict(record.headers)
    assert record.value == b"{not json"
    assert headers["orgstream-error"].startswith(b"schema: not JSON")
    assert headers["orgstream-origin"] == f"{stack.topic}/0/0".encode()
