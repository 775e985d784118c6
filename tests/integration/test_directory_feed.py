"""The directory feed on a real broker: the resolver reads each touched entity once per batch,
the mirror a worker keeps equals the vendor's directory, and the feed alone rebuilds it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import secrets
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.config import Settings, load_settings
from schemas.event import ContactEvent, encode, utc_iso
from schemas.record import decode_record
from tests.integration.conftest import (
    Broker,
    Stack,
    make_stack,
    orgstream,
    orgstream_async,
    start_cli,
    unique_topic,
)
from workers.apply.appliers import Appliers
from workers.dev import devstack
from workers.dev.harness import (
    SCIM_TOKEN,
    Simulator,
    new_simulator,
    post_callback,
    serve_wecom_api,
    tenant_of,
    tenant_toml,
    wait_converged,
    write_config,
)
from workers.kafka.batches import BatchConsumer
from workers.kafka.catch_up import NotCaughtUp, topic_bounds, wait_caught_up
from workers.kafka.lag import measure_lag
from workers.kafka.offsets import read_all
from workers.kafka.producer import Producer
from workers.resolve.resolver import Resolver
from workers.scim.target import ScimTarget
from workers.simulator.scenarios import random_changes
from workers.simulator.views import DirectoryView, source_view
from workers.simulator.wecom import ROOT_ID, SimUser
from workers.simulator.wecom_api import WeComApi
from workers.store.mirror import open_mirror

pytestmark = pytest.mark.integration


def id_only_update(tenant: str, userid: str) -> ContactEvent:
    now = utc_iso(time.time())
    return ContactEvent(
        event_id=secrets.token_hex(16),
        tenant=tenant,
        vendor="wecom",
        entity="user",
        entity_id=userid,
        change="updated",
        occurred_at=now,
        received_at=now,
        raw="",
        attributes={"userid": userid},
    )


async def produce_hints(bootstrap: str, topic: str, userids: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    for userid in userids:
        event = id_only_update("acme", userid)
        await producer.send_and_wait(topic, encode(event), key=event.key)
    await producer.stop()


@contextlib.asynccontextmanager
async def a_company(broker: Broker, tmp_path: Path) -> AsyncIterator[tuple[Settings, WeComApi]]:
    """Five users at a simulated WeCom, its API served, a config and topics of their own."""
    sim = new_simulator()
    for i in range(5):
        sim.create_user(SimUser(f"u{i}", f"用户{i}", (ROOT_ID,), ROOT_ID), "ids")
    async with serve_wecom_api(sim) as (api_url, api):
        config = write_config(
            tmp_path, tenant_toml(sim, api_url), broker.port, "http://127.0.0.1:9/v2", 0,
            topic=unique_topic(),
        )  # fmt: skip
        settings = load_settings(config)
        await devstack.create_topics(broker.bootstrap, list(settings.kafka.topics))
        yield settings, api


async def resolve_backlog(settings: Settings, seed_group: str | None = None) -> list[str]:
    """Run the resolver until its group has caught up: the user ids it put on the feed."""
    kafka = settings.kafka
    appliers = Appliers(settings)
    mirror = open_mirror(settings.store.url)
    publisher = Producer(kafka.bootstrap_servers, kafka.topic)
    resolver = Resolver(settings, appliers, mirror, publisher, kafka.resolver_group)
    stage = BatchConsumer(kafka.bootstrap_servers, kafka.topic, kafka.resolver_group,
                          resolver.handle, 6000, seed_group=seed_group)  # fmt: skip
    running = asyncio.create_task(stage.run())
    try:
        deadline = time.monotonic() + 60
        while (await measure_lag(kafka.bootstrap_servers, kafka.topic, kafka.resolver_group)).total:
            assert time.monotonic() < deadline, "the resolver did not catch up"
            await asyncio.sleep(0.3)
    finally:
        stage.stop()
        await running
        await publisher.stop()
        await mirror.aclose()
        await appliers.aclose()
    records = [
        decode_record(r.value)
        for r in await read_all(kafka.bootstrap_servers, kafka.directory_topic)
    ]
    return [r.id for r in records if r.kind == "user"]


async def test_fifty_hints_for_five_users_cost_at_most_five_reads(
    broker: Broker, tmp_path: Path
) -> None:
    """All 50 hints are on the topic before the resolver starts; the simulated WeCom counts
    the `user/get` calls."""
    async with a_company(broker, tmp_path) as (settings, api):
        await produce_hints(
            broker.bootstrap, settings.kafka.topic, [f"u{i % 5}" for i in range(50)]
        )
        users = await resolve_backlog(settings)
    assert api.calls.count("user/get") <= 5
    assert sorted(users) == [f"u{i}" for i in range(5)]


async def test_an_upgrade_takes_over_the_hints_where_the_workers_left_them(
    broker: Broker, tmp_path: Path
) -> None:
    """The worker's group had applied the first hints; switching the feed on, the resolver
    starts after them instead of resolving all of history again."""
    async with a_company(broker, tmp_path) as (settings, _):
        kafka = settings.kafka
        await produce_hints(broker.bootstrap, kafka.topic, ["u0", "u1"])
        worker = AIOKafkaConsumer(kafka.topic, bootstrap_servers=broker.bootstrap,
                                  group_id=kafka.consumer_group, enable_auto_commit=False,
                                  auto_offset_reset="earliest")  # fmt: skip
        await worker.start()
        seen = 0
        while seen < 2:
            seen += sum(len(v) for v in (await worker.getmany(timeout_ms=500)).values())
        await worker.commit()
        await worker.stop()
        await produce_hints(broker.bootstrap, kafka.topic, ["u2", "u3", "u4"])
        users = await resolve_backlog(settings, seed_group=kafka.consumer_group)
    assert sorted(users) == ["u2", "u3", "u4"]


@pytest.fixture(params=["wecom", "dingtalk"])
async def stack(
    request: pytest.FixtureRequest, broker: Broker, scim_server: str, tmp_path: Path
) -> Any:
    """A stack whose worker runs the feed: the resolver, the mirror, and the SCIM path reading
    records instead of hints."""
    async for made in make_stack(
        broker, scim_server, tmp_path, vendors=(request.param,),
        extra_toml="[feed]\nenabled = true\n",
    ):  # fmt: skip
        yield made


def with_config(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*devstack.orgstream_command(), *args, "--config", str(config)],
        capture_output=True, text=True, check=False, timeout=120,
        env=devstack.child_environment(),
    )  # fmt: skip


def mirrored(dump: dict[str, Any], sim: Simulator) -> DirectoryView:
    """`orgstream mirror dump --json` in the shape the simulator's directory is compared in:
    a user who left is in no department and inactive, or gone."""
    number = sim.department_number
    departments = {
        number(d["id"]): (d["name"], number(d["parent_id"])) for d in dump["departments"]
    }
    users = {
        u["userid"]: (
            u["name"], u["active"], u.get("title", ""), u.get("email", ""),
            tuple(sorted(number(d) for d in u["departments"])),
        )
        for u in dump["users"]
    }  # fmt: skip
    return DirectoryView(departments, users)


async def mirror_converged(
    stack: Stack, sim: Simulator | None = None, timeout: float = 30.0
) -> tuple[list[str], dict[str, Any]]:
    """Poll `orgstream mirror dump --json` until it equals the simulated directory (of `sim`,
    or the stack's first tenant); what still differs at the deadline."""
    sim = sim or stack.sim
    deadline = time.monotonic() + timeout
    while True:
        shown = orgstream(stack, "mirror", "dump", "--tenant", tenant_of(sim), "--json")
        assert shown.returncode == 0, shown.stderr
        dump = json.loads(shown.stdout)
        differences = source_view(sim).differences(mirrored(dump, sim))
        if not differences or time.monotonic() > deadline:
            return differences, dump
        await asyncio.sleep(0.5)


async def test_records_reach_the_target_and_the_mirror_and_the_feed_alone_rebuilds_both(
    stack: Stack, scim_server: str
) -> None:
    """Receiver → hints → resolver → feed → SCIM path and mirror, for each vendor; then an
    empty store and an empty target fed from the feed's start alone, without the vendor."""
    tenant = tenant_of(stack.sim)
    async with httpx.AsyncClient(timeout=10) as client:
        for plaintext in random_changes(stack.sim, random.Random(11), 35):
            response = await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            assert response.is_success
    assert (await wait_converged(stack.sim, stack.scim_url))[0] == []
    differences, live = await mirror_converged(stack)
    assert differences == []
    assert live["users"]
    assert len(live["departments"]) > 1

    # A store of its own, empty, filled from the feed alone.
    elsewhere = stack.workdir / "rebuilt.toml"
    text = stack.config.read_text(encoding="utf-8")
    elsewhere.write_text(
        text.replace(str(stack.workdir / "orgstream.db"), str(stack.workdir / "rebuilt.db")),
        encoding="utf-8",
    )
    rebuilt = with_config(elsewhere, "mirror", "rebuild", "--tenant", tenant)
    assert rebuilt.returncode == 0, rebuilt.stderr
    again = with_config(elsewhere, "mirror", "dump", "--tenant", tenant, "--json")
    assert json.loads(again.stdout) == live

    for stage in ("resolver", "mirror"):  # each stage's group has caught up
        shown = orgstream(stack, "lag", "--stage", stage, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["total_lag"] == 0

    tree = orgstream(stack, "mirror", "dump", "--tenant", tenant)
    assert tree.returncode == 0
    assert tree.stdout.startswith("▸ ")

    # A new sink bootstraps from the feed: its own group, store and empty target.
    fresh_target = f"{scim_server}/{secrets.token_hex(4)}/v2"
    newcomer = stack.workdir / "newcomer.toml"
    newcomer_text = text.replace(
        str(stack.workdir / "orgstream.db"), str(stack.workdir / "newcomer.db")
    ).replace(f'base_url = "{stack.scim_url}"', f'base_url = "{fresh_target}"')
    newcomer_text = re.sub(
        r"consumer_group = \"[^\"]+\"", 'consumer_group = "newcomer"', newcomer_text
    )
    newcomer_text = re.sub(
        r"\[worker\]\nmetrics_port = \d+", "[worker]\nmetrics_port = 0", newcomer_text
    )
    newcomer.write_text(newcomer_text, encoding="utf-8")
    worker = start_cli("worker", newcomer, stack.workdir / "newcomer.log")
    try:
        assert (await wait_converged(stack.sim, fresh_target, timeout=90))[0] == []
    finally:
        worker.terminate()
        worker.wait(15)


@pytest.fixture
async def wecom_stack(broker: Broker, scim_server: str, tmp_path: Path) -> Any:
    async for made in make_stack(
        broker, scim_server, tmp_path, extra_toml="[feed]\nenabled = true\n"
    ):
        yield made


async def test_replay_applies_records_without_the_vendor_and_re_resolves_hints(
    wecom_stack: Stack,
) -> None:
    stack = wecom_stack
    start = datetime.now(UTC) - timedelta(seconds=1)
    async with httpx.AsyncClient(timeout=10) as client:
        for plaintext in random_changes(stack.sim, random.Random(5), 20):
            assert (
                await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            ).is_success
    assert (await wait_converged(stack.sim, stack.scim_url))[0] == []
    target = ScimTarget(stack.scim_url, SCIM_TOKEN, 10.0)
    for kind in ("Users", "Groups"):  # an accident on the target side
        for resource in await target.list_all(kind, attributes="id"):
            await target.delete(kind, resource["id"])
    await target.aclose()

    api = stack.api
    assert isinstance(api, WeComApi)
    reads_before = api.calls.count("user/get")
    code, out, err = await orgstream_async(
        stack, "replay", "--topic", "records", "--since", start.isoformat(), "--json"
    )
    assert code == 0, err
    assert set(json.loads(out)["outcomes"]) <= {"applied", "skipped"}
    assert (await wait_converged(stack.sim, stack.scim_url, timeout=20))[0] == []
    assert api.calls.count("user/get") == reads_before  # records need no vendor

    code, out, err = await orgstream_async(stack, "replay", "--since", start.isoformat(), "--json")
    assert code == 0, err
    assert json.loads(out)["outcomes"]["resolved"] > 0
    feed = [
        decode_record(r.value) for r in await read_all(stack.bootstrap, f"{stack.topic}.directory")
    ]
    assert any(r.origin == "replay" for r in feed)


async def test_waiting_for_a_stage_that_is_not_running_ends_with_its_name(
    broker: Broker, tmp_path: Path
) -> None:
    """A full sync with the feed waits for the stages to take in what it published: with no
    worker in the group, the wait ends at its deadline and names the group; once the group
    commits past the end, it returns."""
    async with a_company(broker, tmp_path) as (settings, _):
        kafka = settings.kafka
        await produce_hints(broker.bootstrap, kafka.topic, ["u0", "u1", "u2"])
        bounds = await topic_bounds(broker.bootstrap, kafka.topic)
        seen: list[tuple[int, int]] = []
        with pytest.raises(NotCaughtUp, match=kafka.resolver_group):
            await wait_caught_up(broker.bootstrap, kafka.resolver_group, bounds,
                                 time.monotonic() + 1.0,
                                 lambda done, total: seen.append((done, total)))  # fmt: skip
        assert seen[-1] == (0, 3)
        # A partition whose records all expired (log start = end) holds nothing to wait for.
        expired = {tp: (end, end) for tp, (_, end) in bounds.items()}
        await wait_caught_up(broker.bootstrap, kafka.resolver_group, expired, time.monotonic())
        consumer = AIOKafkaConsumer(kafka.topic, bootstrap_servers=broker.bootstrap,
                                    group_id=kafka.resolver_group, enable_auto_commit=False,
                                    auto_offset_reset="earliest")  # fmt: skip
        await consumer.start()
        try:
            read = 0
            while read < 3:
                read += sum(len(v) for v in (await consumer.getmany(timeout_ms=500)).values())
            await consumer.commit()
        finally:
            await consumer.stop()
        await wait_caught_up(broker.bootstrap, kafka.resolver_group, bounds, time.monotonic() + 5)
