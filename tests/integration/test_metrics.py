"""/metrics of the receiver and the worker: parsed by prometheus-client's own parser, with the
metrics operators chart and alert on, and a lag gauge that agrees with `orgstream lag`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.integration.conftest import (
    Broker,
    Stack,
    make_stack,
    orgstream_async,
    read_topic,
    start_cli,
    unique_topic,
)
from workers.dev import devstack
from workers.dev.harness import (
    new_simulator,
    post_callback,
    tenant_toml,
    wait_converged,
    wait_until_up,
    write_config,
)
from workers.simulator.wecom import ROOT_ID, SimUser

pytestmark = pytest.mark.integration

RECEIVER_METRICS = {"orgstream_callbacks", "orgstream_publish_seconds"}
WORKER_METRICS = {
    "orgstream_events",
    "orgstream_apply_seconds",
    "orgstream_freshness_seconds",
    "orgstream_scim_requests",
    "orgstream_scim_request_seconds",
    "orgstream_vendor_calls",
    "kafka_consumergroup_group_lag",
    "kafka_consumergroup_group_lag_seconds",
    "kafka_consumergroup_group_offset",
    "kafka_consumergroup_group_sum_lag",
    "kafka_consumergroup_group_max_lag_seconds",
    "kafka_partition_latest_offset",
}


@pytest.fixture
async def stack(broker: Broker, scim_server: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async for made in make_stack(
        broker, scim_server, tmp_path, faulty_target=True, worker_toml="lag_poll_seconds = 0.3\n"
    ):
        yield made


async def scrape(url: str) -> dict[str, list[Sample]]:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(url)).text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(matching)


async def test_metrics_parse_and_the_lag_gauge_agrees_with_orgstream_lag(stack: Stack) -> None:
    faults = stack.faults
    assert faults is not None
    async with httpx.AsyncClient(timeout=10) as client:
        for i in range(3):
            user = SimUser(f"m{i}", f"指标{i}", (ROOT_ID,), ROOT_ID)
            plaintext = stack.sim.create_user(user, "ids")
            assert (
                await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            ).is_success
    assert (await wait_converged(stack.sim, stack.scim_url))[0] == []

    async with httpx.AsyncClient(timeout=5) as client:  # never on the port the vendors reach
        assert (await client.get(f"{stack.receiver_url}/metrics")).status_code == 404
    receiver = await scrape(stack.receiver_metrics_url)
    assert set(receiver) >= RECEIVER_METRICS
    callbacks = receiver["orgstream_callbacks"]
    assert value(callbacks, "orgstream_callbacks_total", tenant="acme", outcome="accepted") == 3

    # The target now makes the worker wait (429, Retry-After 5 s): a backlog builds up.
    faults.burst(429, 100_000, retry_after="5")
    async with httpx.AsyncClient(timeout=10) as client:
        for i in range(5):
            plaintext = stack.sim.update_user(f"m{i % 3}", "ids", position=f"职位{i}")
            assert (
                await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            ).is_success

    deadline = time.monotonic() + 20
    while True:
        worker = await scrape(stack.worker_metrics_url)
        summed = value(
            worker["kafka_consumergroup_group_sum_lag"], "kafka_consumergroup_group_sum_lag"
        )
        if summed == 5 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    code, out, err = await orgstream_async(stack, "lag", "--json")
    assert code == 0, err
    measured = json.loads(out)
    assert summed == measured["total_lag"] == 5
    gauges = worker["kafka_consumergroup_group_lag"]
    for partition in measured["partitions"]:
        labels = {"topic": stack.topic, "partition": str(partition["partition"])}
        assert value(gauges, "kafka_consumergroup_group_lag", **labels) == partition["lag"]
    assert value(worker["kafka_consumergroup_group_max_lag_seconds"],
                 "kafka_consumergroup_group_max_lag_seconds") > 0  # fmt: skip

    faults.heal()
    assert (await wait_converged(stack.sim, stack.scim_url, timeout=40))[0] == []
    worker = await scrape(stack.worker_metrics_url)
    assert set(worker) >= WORKER_METRICS
    events = worker["orgstream_events"]
    assert value(events, "orgstream_events_total", tenant="acme", outcome="applied") >= 3
    requests = worker["orgstream_scim_requests"]
    assert value(requests, "orgstream_scim_requests_total", status="429") > 0
    assert value(requests, "orgstream_scim_requests_total", method="POST", status="201") >= 3
    assert value(worker["orgstream_vendor_calls"], "orgstream_vendor_calls_total", errcode="0") > 0
    freshness = worker["orgstream_freshness_seconds"]
    assert value(freshness, "orgstream_freshness_seconds_count", tenant="acme") >= 3


async def test_a_receiver_of_several_processes_serves_their_metrics_summed(
    broker: Broker, tmp_path: Path
) -> None:
    """`receiver.workers = 3`: the processes share the callback port, and the metrics port
    counts every callback whichever process took it."""
    sim = new_simulator()
    topic = unique_topic()
    await devstack.create_topics(broker.bootstrap, [topic, f"{topic}.dlq"])
    port, metrics_port = devstack.free_port(), devstack.free_port()
    config = write_config(
        tmp_path, tenant_toml(sim, "http://127.0.0.1:9"), broker.port, "http://127.0.0.1:9/v2",
        port, topic=topic, receiver_metrics_port=metrics_port, receiver_workers=3,
    )  # fmt: skip
    receiver = start_cli("receiver", config, tmp_path / "receiver.log")
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_up(f"{url}/healthz")
        for i in range(30):  # a connection each, as vendors make them: any process may take it
            async with httpx.AsyncClient(timeout=10) as client:
                user = SimUser(f"p{i}", f"进程{i}", (ROOT_ID,), ROOT_ID)
                plaintext = sim.create_user(user, "full")
                response = await post_callback(client, url, sim, plaintext)
                assert response.is_success, response.text
        callbacks = (await scrape(f"http://127.0.0.1:{metrics_port}/metrics"))[
            "orgstream_callbacks"
        ]
        assert value(callbacks, "orgstream_callbacks_total", outcome="accepted") == 30
    finally:
        receiver.terminate()
        receiver.wait(15)
    published = await read_topic(broker.bootstrap, topic)
    assert len(published) == 30
