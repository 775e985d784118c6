"""The directory converges whatever happens on the way: a seeded random history of WeCom,
DingTalk and Feishu changes (Feishu's users also leave and re-enter the app's scope),
delivered out of order across entities, with vendor retries and duplicate deliveries, while
the SCIM target throws bursts of 429, 503 and 500 and the worker is killed with SIGKILL
mid-stream and restarted. After quiescence the target equals each source.

300 changes by default; `ORGSTREAM_CONVERGENCE_CHANGES=5000 make convergence` for the long run,
`ORGSTREAM_CONVERGENCE_SEED` to replay a failing seed (it is printed on failure).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from schemas.config.model import FeishuApp, Secret
from schemas.vendors import dingtalk, feishu, wecom
from tests.integration.conftest import Broker, Stack, Target, make_stack, orgstream
from tests.integration.test_directory_feed import mirror_converged
from workers.dev.harness import (
    Simulator,
    callback_url,
    content_type_of,
    tenant_of,
    wait_converged,
)
from workers.simulator.feishu import FeishuSimulator
from workers.simulator.scenarios import random_changes
from workers.simulator.wecom import SignedRequest
from workers.store.history import HistoryQuery, open_history

pytestmark = pytest.mark.integration

CHANGES = int(os.environ.get("ORGSTREAM_CONVERGENCE_CHANGES", "300"))
SEED = int(os.environ.get("ORGSTREAM_CONVERGENCE_SEED", "20261122"))
REORDER_WINDOW = 8  # a callback may overtake up to this many others (of other entities)
DUPLICATE_RATE = 0.1  # delivered twice, as a vendor does when our answer came late
CHAOS_RATE = 0.03  # per SCIM call, the chance a burst of 1-6 failures starts
WORKER_SETTINGS = """
retries_before_parking = 2
redrive_interval_seconds = 0.5
quarantine_probe_seconds = 1
"""
# Random histories delete freely; the guard has its own test (test_resilience.py).
NO_GUARD = """
[guard]
enabled = false
"""


def event_type(plaintext: bytes) -> str:
    return str(json.loads(plaintext)["header"]["event_type"])


@dataclass(frozen=True)
class Callback:
    sim: Simulator
    plaintext: bytes
    entities: frozenset[str]  # what it touches: "tenant:user:u001", ...


def touched(sim: Simulator, plaintext: bytes) -> frozenset[str]:
    """The entities a callback changes. A userid change touches the old id and the new one."""
    tenant = tenant_of(sim)
    if isinstance(sim, FeishuSimulator):
        app = FeishuApp(sim.app_id, sim.tenant_key, Secret(sim.verification_token))
        opened = feishu.normalize(tenant, app, json.loads(plaintext), received_at=0)
    else:
        normalize = wecom.normalize if sim.vendor == "wecom" else dingtalk.normalize
        opened = normalize(tenant, plaintext, received_at=0)
    keys = set()
    for event in opened.events:
        keys.add(f"{tenant}:{event.entity}:{event.entity_id}")
        if new_userid := event.attributes.get("new_userid"):
            keys.add(f"{tenant}:user:{new_userid}")
    return frozenset(keys)


def disorder(callbacks: list[Callback], rng: random.Random) -> list[Callback]:
    """A delivery order: each callback may overtake up to REORDER_WINDOW others, never one
    about the same entity (the vendor's order per entity holds, nothing else does); some are
    delivered twice."""
    pending, delivered = list(callbacks), []
    while pending:
        blocked: set[str] = set()
        ready = []
        for index, callback in enumerate(pending[:REORDER_WINDOW]):
            if not callback.entities & blocked:
                ready.append(index)
            blocked |= callback.entities
        chosen = pending.pop(rng.choice(ready))
        delivered.append(chosen)
        if rng.random() < DUPLICATE_RATE:
            delivered.append(chosen)
    return delivered


def merge(streams: list[list[Callback]], rng: random.Random) -> list[Callback]:
    """The vendors' streams interleaved at random, each in its own order."""
    queues = [list(reversed(stream)) for stream in streams]
    merged = []
    while any(queues):
        merged.append(rng.choice([q for q in queues if q]).pop())
    return merged


async def deliver(client: httpx.AsyncClient, stack: Stack, callback: Callback) -> None:
    """POST as the vendor does: on anything but 200, try again (the vendors retry)."""
    sim = callback.sim
    signed: SignedRequest = sim.signed_request(callback.plaintext)
    url = callback_url(stack.receiver_url, sim, signed.query_string)
    headers = dict(signed.headers) or {"Content-Type": content_type_of(sim)}
    for _ in range(20):
        try:
            response = await client.post(url, content=signed.body, headers=headers)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError(f"the receiver never accepted {callback.plaintext[:80]!r}")


# Both paths to the target: events resolved by the worker, and records from the directory feed.
MODES = ["hints", "feed"]


@pytest.fixture(params=MODES)
async def three_vendor_stack(
    request: pytest.FixtureRequest, broker: Broker, any_target: Target, tmp_path: Path
) -> AsyncIterator[Stack]:
    """The worker applying the hints, or (`feed`) the resolver's records through the feed;
    on scim2-server, then on the restrictive server."""
    feed = "[feed]\nenabled = true\n" if request.param == "feed" else ""
    async for made in make_stack(
        broker,
        any_target.url,
        tmp_path,
        restrictive=any_target.restrictive,
        vendors=("wecom", "dingtalk", "feishu"),
        faulty_target=True,
        worker_toml=WORKER_SETTINGS,
        extra_toml=NO_GUARD + feed,
    ):
        yield made


async def test_the_directory_converges_under_disorder_faults_and_a_killed_worker(
    three_vendor_stack: Stack,
) -> None:
    stack, faults = three_vendor_stack, three_vendor_stack.faults
    assert faults is not None
    rng = random.Random(SEED)
    streams = [
        [
            Callback(rig.sim, plaintext, touched(rig.sim, plaintext))
            for plaintext in random_changes(rig.sim, rng, CHANGES // len(stack.rigs))
        ]
        for rig in stack.rigs
    ]
    feishu_stream = next(s for s in streams if s[0].sim.vendor == "feishu")
    # Each of them is in Feishu's random stream (the scope change both ways, by the seed).
    assert set(feishu.CONTACT_EVENT_TYPES) <= {event_type(c.plaintext) for c in feishu_stream}
    schedule = disorder(merge(streams, rng), rng)
    kill_at = len(schedule) * 2 // 5

    history = open_history(f"sqlite:///{stack.workdir / 'orgstream.db'}")
    # One burst of each kind for sure (the ledger sends few requests, so chaos alone may not
    # draw all three), then random bursts for the rest of the run.
    for status, retry_after in ((429, "1"), (503, None), (500, None)):
        faults.burst(status, 2, retry_after)
    faults.chaos(CHAOS_RATE)
    async with httpx.AsyncClient(timeout=10) as client:
        for index, callback in enumerate(schedule):
            if index == kill_at:
                # Mid-batch: once the worker is well into the backlog, never at a clean point.
                while len(await history.query(HistoryQuery(limit=100_000))) < kill_at // 4:
                    await asyncio.sleep(0.05)
                stack.restart_worker(kill=True)
            await deliver(client, stack, callback)

    budget = max(90.0, CHANGES * 0.2)
    for rig in stack.rigs:
        differences, _ = await wait_converged(rig.sim, rig.scim_url, timeout=budget)
        assert differences == [], f"seed {SEED}: {rig.sim.vendor} did not converge"
    assert set(faults.injected) == {429, 503, 500}
    feed = "[feed]\nenabled = true" in stack.config.read_text(encoding="utf-8")
    if feed:
        for rig in stack.rigs:  # the mirror the feed keeps equals each source too
            differences, _ = await mirror_converged(stack, rig.sim)
            assert differences == [], f"seed {SEED}: {rig.sim.vendor}'s mirror"

    # Records the killed worker had applied but not committed came round again.
    outcomes = await history.query(HistoryQuery(limit=100_000))
    await history.aclose()
    origins = Counter(h.origin for h in outcomes if h.outcome != "parked")
    # With the feed, the kill may land in the resolver's batch rather than the SCIM path's:
    # what it leaves uncommitted is resolved again, and no history row shows it.
    assert feed or max(origins.values()) > 1, "the kill found no batch in flight"

    dead = orgstream(stack, "history", "--outcome", "dead_lettered", "--json")
    assert dead.returncode == 0, dead.stderr
    assert dead.stdout.strip() == "", f"seed {SEED}: dead letters: {dead.stdout[:2000]}"
    applied = orgstream(stack, "history", "--outcome", "applied", "--limit", "100000", "--json")
    entries = [json.loads(line) for line in applied.stdout.splitlines()]
    assert {e["tenant"] for e in entries} == {"acme", "beta", "gamma"}
    # The faults were met (above) and got through: each failed request is retried in place by
    # the SCIM client, and an event whose requests kept failing is retried as a whole.
