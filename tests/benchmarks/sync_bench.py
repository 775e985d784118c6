"""Bench 4 (full sync of 10,000 users in 500 departments into an empty target) and bench 5
(`orgstream replay --dry-run` over 100,000 events)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from schemas.event import encode
from schemas.vendors.wecom import normalize
from tests.benchmarks.common import Result, peak_rss_mb
from tests.benchmarks.scim_replay import replay
from tests.benchmarks.stack import Services, config
from tests.faults import FaultyTarget
from workers.dev import devstack
from workers.dev.harness import new_simulator, serve, serve_wecom_api, tenant_toml
from workers.kafka import offsets
from workers.simulator.org import populate
from workers.simulator.wecom import WeComSimulator

SYNC_USERS, SYNC_DEPARTMENTS = 10_000, 500
REPLAY_EVENTS, REPLAY_USERS = 100_000, 1_000


async def run_measured(argv: list[str]) -> tuple[int, str, float, float]:
    """Run a command: (exit code, stdout, seconds, peak RSS in MB read while it ran)."""
    started = time.perf_counter()
    child = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=devstack.child_environment(),
    )  # fmt: skip
    peak = 0.0

    async def watch() -> None:
        nonlocal peak
        while child.returncode is None:
            try:
                peak = max(peak, peak_rss_mb(child.pid))
            except (FileNotFoundError, ProcessLookupError):
                return
            await asyncio.sleep(0.2)

    watching = asyncio.create_task(watch())
    out, err = await child.communicate()
    watching.cancel()
    if child.returncode:
        print(err.decode()[-2000:])
    return child.returncode or 0, out.decode(), time.perf_counter() - started, peak


async def bench_full_sync(services: Services, workdir: Path) -> list[Result]:
    sim = new_simulator()
    populate(sim, users=SYNC_USERS, departments=SYNC_DEPARTMENTS, depth=5, seed=7)
    async with serve_wecom_api(sim) as (api_url, api):
        proxy = FaultyTarget(services.scim_root, recording=True)
        async with serve(proxy.app) as proxy_url:
            target_path = services.fresh_target().removeprefix(services.scim_root)
            workdir = workdir / "sync-bench"
            tenant = tenant_toml(sim, api_url, api_qps=5000)
            path = config(
                workdir, services, tenant, await services.topic(), proxy_url + target_path
            )
            argv = [*devstack.orgstream_command(), "sync", "--tenant", "acme", "--json"]
            code, out, seconds, peak = await run_measured([*argv, "--config", str(path)])
            assert code == 0, out
            outcome: dict[str, Any] = orjson.loads(out)
            writes = [e for e in proxy.exchanges if e.method != "GET"]
            reads = len(proxy.exchanges) - len(writes)
            raw_path = services.fresh_target().removeprefix(services.scim_root)
            raw_seconds = await replay(writes, proxy_url + raw_path, 8, target_path)
            await proxy.aclose()
    assert outcome["counts"]["created"] == SYNC_USERS + SYNC_DEPARTMENTS, outcome
    what = (f"{SYNC_USERS:,} users / {SYNC_DEPARTMENTS} departments: {len(api.calls):,} vendor "
            f"calls, {len(writes):,} SCIM writes + {reads:,} reads")  # fmt: skip
    return [
        Result("4 full sync", f"wall time, {what}", seconds, "s", raw_seconds,
               "the same writes from a bare loop, 8 at a time"),
        Result("6 memory", "`orgstream sync` peak RSS (bench 4)", peak, "MB", 0, ""),
    ]  # fmt: skip


async def bench_replay(services: Services, workdir: Path) -> list[Result]:
    sim = new_simulator()
    populate(sim, users=REPLAY_USERS, departments=20, depth=3, seed=5)
    topic = await services.topic()
    await _fill(services.bootstrap, topic, sim)
    started = time.perf_counter()
    records = await offsets.read_all(services.bootstrap, topic)
    raw_seconds = time.perf_counter() - started
    assert len(records) == REPLAY_EVENTS
    async with serve_wecom_api(sim) as (api_url, _api):
        workdir = workdir / "replay-bench"
        path = config(workdir, services, tenant_toml(sim, api_url, api_qps=5000), topic,
                      services.fresh_target())  # fmt: skip
        argv = [*devstack.orgstream_command(), "replay", "--since", "1h", "--dry-run", "--json"]
        code, out, seconds, _ = await run_measured([*argv, "--config", str(path)])
    assert code == 0, out
    summary = orjson.loads(out)
    rate, raw_rate = REPLAY_EVENTS / seconds, REPLAY_EVENTS / raw_seconds
    return [
        Result("5 replay", f"--dry-run read-and-plan, {REPLAY_EVENTS:,} events "
               f"({summary.get('entities', '?')} entities planned)", rate, "events/s", raw_rate,
               "a bare consumer reading the same events", "≥ 50,000/s", rate >= 50_000),
    ]  # fmt: skip


async def _fill(bootstrap: str, topic: str, sim: WeComSimulator) -> None:
    """REPLAY_EVENTS full-field updates spread over the directory's users."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=1 << 20)  # fmt: skip
    await producer.start()
    try:
        userids = sorted(sim.users)
        pending = []
        for index in range(REPLAY_EVENTS):
            userid = userids[index % len(userids)]
            plaintext = sim.update_user(userid, "full", position=f"职位{index}")
            (event,) = normalize("acme", plaintext, time.time()).events
            pending.append(await producer.send(topic, encode(event), key=event.key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
