"""Bench 2 (freshness) and bench 3 (worker throughput) on the real pipeline: the simulated
WeCom, `orgstream receiver` and `orgstream worker` as processes, Tansu, and scim2-server behind
the proxy of tests/faults.py (which records, so the target's raw capacity can be measured with
the same requests)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import httpx

from receiver.publisher import KafkaEventPublisher
from schemas.config import WorkerSettings
from schemas.event import ContactEvent
from schemas.topics import new_traceparent
from schemas.vendors.wecom import normalize
from tests.benchmarks.common import Result, peak_rss_mb, percentile
from tests.benchmarks.scim_replay import replay
from tests.benchmarks.stack import Services, config, orgstream_process
from tests.faults import FaultyTarget
from workers.dev import devstack
from workers.dev.harness import (
    SCIM_TOKEN,
    new_simulator,
    post_callback,
    serve,
    serve_wecom_api,
    tenant_toml,
)
from workers.simulator.org import populate
from workers.simulator.wecom import SimUser, WeComSimulator

# Shorter for a quick look while working on it; `make bench` runs the full minute.
FRESHNESS_SECONDS = float(os.environ.get("ORGSTREAM_BENCH_FRESHNESS_SECONDS", "60"))
FRESHNESS_RATES = (50.0, 200.0)
WORKER_EVENTS = 1000
DEPARTMENTS = 100
_DRAIN_CAP_SECONDS = 20.0
_SENDERS = 64


def applied_at(db: Path, userids: set[str]) -> dict[str, float]:
    """When the worker recorded each of these users as applied (epoch seconds)."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT entity_id, recorded_at FROM sync_history WHERE outcome = 'applied'"
        ).fetchall()
    return {
        userid: datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        for userid, at in rows
        if userid in userids
    }


async def wait_applied(db: Path, userids: set[str], cap: float) -> dict[str, float]:
    deadline = time.monotonic() + cap
    while True:
        done = applied_at(db, userids) if db.exists() else {}
        if len(done) == len(userids) or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.5)


def hire(sim: WeComSimulator, label: str, index: int) -> bytes:
    """A new hire, full-field, in one of the company's departments (none of them huge: one
    Group holding thousands of members is no real org chart, and slow on scim2-server)."""
    departments = sorted(d for d in sim.departments if d != 1)
    department = departments[index % len(departments)]
    user = SimUser(
        f"{label}{index:06d}", f"新人{index}", (department,), department, position="工程师"
    )
    return sim.create_user(user, "full")


async def bench_pipeline(services: Services, workdir: Path) -> list[Result]:
    sim = new_simulator()
    populate(sim, users=0, departments=DEPARTMENTS, depth=4, seed=3)
    results: list[Result] = []
    receiver_rss = worker_rss = 0.0
    async with serve_wecom_api(sim) as (api_url, _api):
        for rate in FRESHNESS_RATES:
            # The floor first, on an idle target; then a stack of its own per rate, so no
            # backlog of the last rate is in this one's figures.
            baseline = await _direct_writes(services.fresh_target(), rate)
            stackdir = workdir / f"freshness-{rate:.0f}"
            receiver_port, metrics_port = devstack.free_port(), devstack.free_port()
            path = config(
                stackdir, services, tenant_toml(sim, api_url), await services.topic(),
                services.fresh_target(), receiver_port, metrics_port,
            )  # fmt: skip
            receiver = orgstream_process("receiver", path, services.logs, receiver_port)
            worker = orgstream_process("worker", path, services.logs, metrics_port)
            try:
                db = stackdir / "orgstream.db"
                results += await _freshness(sim, receiver_port, db, rate, baseline)
                receiver_rss = max(receiver_rss, peak_rss_mb(receiver.process.pid))
                worker_rss = max(worker_rss, peak_rss_mb(worker.process.pid))
            finally:
                receiver.stop()
                worker.stop()
        results += [
            Result("6 memory", "receiver peak RSS (bench 2)", receiver_rss, "MB", 0, ""),
            Result("6 memory", "worker peak RSS (bench 2)", worker_rss, "MB", 0, ""),
        ]
        results += await _worker_throughput(sim, services, workdir, api_url)
    return results


async def _freshness(
    sim: WeComSimulator, receiver_port: int, db: Path, rate: float, baseline: tuple[float, float]
) -> list[Result]:
    label = f"f{int(rate)}x"
    count = int(rate * FRESHNESS_SECONDS)
    sent: dict[str, float] = {}
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    limits = httpx.Limits(max_connections=_SENDERS)
    gate = asyncio.Semaphore(_SENDERS)  # httpx's pool slows down badly with thousands queued
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, pool=None), limits=limits) as client:
        start = time.time() + 0.1

        async def send(index: int) -> None:
            due = start + index / rate
            await asyncio.sleep(max(0.0, due - time.time()))
            plaintext = hire(sim, label, index)
            sent[f"{label}{index:06d}"] = due  # from when the vendor sent it: queueing counts
            for _ in range(3):  # as the vendor does, a failed delivery is sent again
                async with gate:
                    try:
                        response = await post_callback(client, receiver_url, sim, plaintext)
                    except httpx.TransportError:
                        continue
                if response.status_code == 200:
                    return
            raise AssertionError(f"callback {index} was never accepted")

        await asyncio.gather(*(send(i) for i in range(count)))
    done = await wait_applied(db, set(sent), _DRAIN_CAP_SECONDS)
    # Not applied by the end of the run: older than the run, so counted as the run's length.
    ages = [done[u] - sent[u] if u in done else float("inf") for u in sent]
    late = count - len(done)
    tag = f"at {rate:.0f}/s for {FRESHNESS_SECONDS:.0f} s"
    if late:
        tag += f"; {late} of {count} not applied {_DRAIN_CAP_SECONDS:.0f} s after the last"
    p99 = percentile(sorted(ages), 0.99)
    return [
        Result("2 freshness", f"callback → SCIM p50, {tag}", percentile(sorted(ages), 0.5) * 1000,
               "ms", baseline[0] * 1000, "one SCIM POST /Users at that rate, p50"),
        Result("2 freshness", f"callback → SCIM p99, {tag}", p99 * 1000, "ms",
               baseline[1] * 1000, "one SCIM POST /Users at that rate, p99",
               "p99 < 1 s at 200/s" if rate == 200 else "", p99 < 1 if rate == 200 else None),
    ]  # fmt: skip


async def _direct_writes(base_url: str, rate: float, seconds: float = 5.0) -> tuple[float, float]:
    """The floor: the target's own latency for the write a hire ends in, at the same rate."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {SCIM_TOKEN}"}
    timeout = httpx.Timeout(30, pool=None)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout) as client:
        start = time.perf_counter() + 0.1

        async def one(index: int) -> None:
            due = start + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"direct{index}", "externalId": f"direct:{index}"}  # fmt: skip
            assert (await client.post("/Users", json=body)).status_code == 201
            latencies.append(time.perf_counter() - due)

        await asyncio.gather(*(one(i) for i in range(int(rate * seconds))))
    return percentile(latencies, 0.5), percentile(latencies, 0.99)


async def _worker_throughput(
    sim: WeComSimulator, services: Services, workdir: Path, api_url: str
) -> list[Result]:
    """A backlog of hires already on the topic; the worker applies it; then the same SCIM
    requests again from a bare loop, as many at once as the worker applies entities."""
    topic = await services.topic()
    events: list[ContactEvent] = []
    for index in range(WORKER_EVENTS):
        events += normalize("acme", hire(sim, "w", index), time.time()).events
    publisher = KafkaEventPublisher(services.bootstrap, topic, 30.0)
    for start in range(0, len(events), 500):
        await publisher.publish(events[start : start + 500], new_traceparent())
    await publisher.stop()
    proxy = FaultyTarget(services.scim_root, recording=True)
    async with serve(proxy.app) as proxy_url:
        target_path = services.fresh_target().removeprefix(services.scim_root)
        metrics_port = devstack.free_port()
        workdir = workdir / "worker-bench"
        path = config(workdir, services, tenant_toml(sim, api_url), topic,
                      proxy_url + target_path, metrics_port=metrics_port)  # fmt: skip
        worker = orgstream_process("worker", path, services.logs, metrics_port, "worker-bench")
        try:
            userids = {e.entity_id for e in events}
            done = await wait_applied(workdir / "orgstream.db", userids, 600)
            worker_rss = peak_rss_mb(worker.process.pid)
        finally:
            worker.stop()
        assert len(done) == len(userids)
        rate = (len(done) - 1) / (max(done.values()) - min(done.values()))
        proxy.recording = False  # what follows is the baseline's, not the worker's
        requests = len(proxy.exchanges)
        raw_path = services.fresh_target().removeprefix(services.scim_root)
        concurrency = WorkerSettings().apply_concurrency  # as many at once as the worker
        seconds = await replay(proxy.exchanges, proxy_url + raw_path, concurrency, target_path)
        await proxy.aclose()
    raw_rate = len(done) / seconds
    return [
        Result("3 worker", f"events applied /s ({requests / len(done):.1f} SCIM requests each)",
               rate, "events/s", raw_rate,
               f"the same requests from a bare loop, {concurrency} at a time", "≥ 90 % of raw",
               rate >= 0.9 * raw_rate),
        Result("6 memory", "worker peak RSS (bench 3)", worker_rss, "MB", 0, ""),
    ]  # fmt: skip
