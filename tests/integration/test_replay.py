"""`orgstream replay`: a wiped target rebuilt from the topic, a dry run that only plans, and a
window in the middle of the topic that applies exactly its own events, on both brokers."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from schemas.event import ContactEvent, encode, utc_iso
from tests.integration.conftest import Broker, NoidaBroker, Stack, orgstream_async, unique_topic
from workers.dev import devstack
from workers.dev.harness import SCIM_TOKEN, post_callback, wait_converged
from workers.scim.target import CORE_USER, ScimTarget
from workers.simulator.scenarios import random_changes

pytestmark = pytest.mark.integration


async def wipe(target: ScimTarget) -> None:
    for kind in ("Users", "Groups"):
        for resource in await target.list_all(kind, attributes="id"):
            await target.delete(kind, resource["id"])


async def everything(target: ScimTarget) -> list[str]:
    found = []
    for kind in ("Users", "Groups"):
        found += [f"{kind}:{r.get('externalId')}" for r in await target.list_all(kind)]
    return sorted(found)


async def test_replay_rebuilds_a_wiped_target_and_a_dry_run_changes_nothing(
    stack: Stack,
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    async with httpx.AsyncClient(timeout=10) as client:
        for plaintext in random_changes(stack.sim, random.Random(5), 30):
            assert (
                await post_callback(client, stack.receiver_url, stack.sim, plaintext)
            ).is_success
    assert (await wait_converged(stack.sim, stack.scim_url))[0] == []
    target = ScimTarget(stack.scim_url, SCIM_TOKEN, 10.0)
    await wipe(target)  # an accident on the target side
    assert await everything(target) == []

    code, out, err = await orgstream_async(
        stack, "replay", "--since", start.isoformat(), "--dry-run", "--json"
    )
    assert code == 0, err
    planned = json.loads(out)
    steps = [step for plan in planned["plans"] for step in plan["plan"]]
    assert any(step.startswith("POST /Users") for step in steps)
    assert any(step.startswith("POST /Groups") for step in steps)
    assert planned["entities"] <= planned["selected"] <= planned["read"]
    assert await everything(target) == []  # a dry run writes nothing

    code, out, err = await orgstream_async(stack, "replay", "--since", start.isoformat(), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["outcomes"].get("applied", 0) > 0
    assert set(summary["outcomes"]) <= {"applied", "skipped"}
    assert (await wait_converged(stack.sim, stack.scim_url, timeout=10))[0] == []
    await target.aclose()

    code, out, _ = await orgstream_async(stack, "history", "--limit", "1000", "--json")
    origins = [json.loads(line)["origin"] for line in out.splitlines()]
    assert any(origin.startswith("replay ") for origin in origins)


def user_created(tenant: str, corp_id: str, userid: str) -> ContactEvent:
    now = time.time()
    return ContactEvent(
        event_id=secrets.token_hex(16),
        tenant=tenant,
        vendor="wecom",
        entity="user",
        entity_id=userid,
        change="created",
        occurred_at=utc_iso(now),
        received_at=utc_iso(now),
        raw="",
        attributes={"userid": userid, "name": userid, "departments": [1], "status": 1},
    )


async def replay_config(
    bootstrap: str, scim_server: str, topic: str, corp_id: str, workdir: Path
) -> tuple[Path, str]:
    """A config for replaying `topic` (and its own DLQ) into a fresh scim2-server tenant,
    with no worker running; and that target's URL."""
    await devstack.create_topics(bootstrap, [topic, f"{topic}.dlq"])
    target_url = f"{scim_server}/{topic.rpartition('-')[2]}/v2"
    config = workdir / "orgstream.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ntopic = "{topic}"\n'
        f'dlq_topic = "{topic}.dlq"\n'
        f'[scim]\nbase_url = "{target_url}"\nbearer_token = "{SCIM_TOKEN}"\n'
        f'[store]\nurl = "sqlite:///{workdir / "state.db"}"\n'
        f'[[tenants]]\nid = "acme"\nvendor = "wecom"\ncorp_id = "{corp_id}"\n'
        f'callback_token = "t"\nencoding_aes_key = "{"k" * 43}"\n',
        encoding="utf-8",
    )
    return config, target_url


def run_orgstream(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*devstack.orgstream_command(), *args, "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
        env=devstack.child_environment(),
    )  # fmt: skip


async def test_a_window_in_the_middle_of_the_topic_applies_only_its_events(
    any_broker: Broker | NoidaBroker, scim_server: str, tmp_path: Path
) -> None:
    topic, corp_id = unique_topic(), f"ww{secrets.token_hex(8)}"
    config, target_url = await replay_config(
        any_broker.bootstrap, scim_server, topic, corp_id, tmp_path
    )
    producer = AIOKafkaProducer(bootstrap_servers=any_broker.bootstrap, acks="all")
    await producer.start()
    marks = []
    for phase in ("before", "inside", "after"):
        marks.append(datetime.now(UTC))
        await asyncio.sleep(0.05)  # record timestamps are whole ms: not in the mark's ms
        for i in range(8):
            event = user_created("acme", corp_id, f"{phase}{i}")
            await producer.send_and_wait(topic, encode(event), key=event.key)
        await asyncio.sleep(1.2)
    await producer.stop()

    replay = run_orgstream(
        config, "replay", "--json", "--since", marks[1].isoformat(), "--until", marks[2].isoformat()
    )
    assert replay.returncode == 0, replay.stderr
    summary = json.loads(replay.stdout)
    assert (summary["read"], summary["outcomes"]) == (8, {"applied": 8})
    target = ScimTarget(target_url, SCIM_TOKEN, 10.0)
    users = sorted(str(u["userName"]) for u in await target.list_all("Users"))
    await target.aclose()
    assert users == [f"inside{i}" for i in range(8)]


async def test_an_event_replay_dead_letters_is_on_the_dlq_topic(
    broker: Broker, scim_server: str, tmp_path: Path
) -> None:
    """Replay settles outcomes as the worker does: a rejected event is on the DLQ topic with
    its error and where it was replayed from, so `orgstream dlq list` shows it."""
    topic, corp_id = unique_topic(), f"ww{secrets.token_hex(8)}"
    config, target_url = await replay_config(
        broker.bootstrap, scim_server, topic, corp_id, tmp_path
    )
    target = ScimTarget(target_url, SCIM_TOKEN, 10.0)
    await target.create(
        "Users", {"schemas": [CORE_USER], "userName": "taken", "externalId": "ldap:taken"}
    )
    await target.aclose()
    start = datetime.now(UTC) - timedelta(seconds=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    for userid in ("taken", "fine"):
        event = user_created("acme", corp_id, userid)
        await producer.send_and_wait(topic, encode(event), key=event.key)
    await producer.stop()

    replay = run_orgstream(config, "replay", "--json", "--since", start.isoformat())
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["outcomes"] == {"applied": 1, "dead_lettered": 1}

    listed = run_orgstream(config, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [dead] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (dead["tenant"], dead["entity_id"], dead["change"]) == ("acme", "taken", "created")
    assert "userName 'taken' belongs to 'ldap:taken'" in dead["error"]
    assert dead["origin"].startswith(f"replay {topic}/")
