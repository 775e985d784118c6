"""Bench 1: callbacks verified, decrypted and durably published per second by one receiver
process, against a bare Starlette endpoint on the same uvicorn settings; latency at 500/s."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.benchmarks.common import Result, peak_rss_mb
from tests.benchmarks.stack import Services, config, orgstream_process
from workers.dev import devstack
from workers.dev.harness import new_dingtalk_simulator, new_simulator, tenant_of, tenant_toml
from workers.simulator.dingtalk import DingTalkSimulator
from workers.simulator.dingtalk import SimUser as DingTalkUser
from workers.simulator.wecom import SimUser as WeComUser
from workers.simulator.wecom import WeComSimulator

CONNECTIONS = 64
SECONDS = 10.0
RATE = 500.0


def signed_callbacks(
    wecom: WeComSimulator, dingtalk: DingTalkSimulator, first: int, count: int
) -> list[bytes]:
    """Distinct, correctly signed callbacks, WeCom and DingTalk in turn, as raw HTTP requests
    (signed now: the receiver refuses timestamps more than 5 minutes off)."""
    requests = []
    for index in range(first, first + count):
        if index % 2:
            user = DingTalkUser(f"d{index}", f"钉{index}", (1,), 1)
            sim: Any = dingtalk
            plaintext = dingtalk.create_user(user)
        else:
            user = WeComUser(f"w{index}", f"企{index}", (1,), 1, position="工程师")
            sim = wecom
            plaintext = wecom.create_user(user, "full")
        signed = sim.signed_request(plaintext)
        content_type = "text/xml" if sim.vendor == "wecom" else "application/json"
        head = (
            f"POST /callbacks/{sim.vendor}/{tenant_of(sim)}?{signed.query_string} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(signed.body)}\r\n\r\n"
        )
        requests.append(head.encode() + signed.body)
    return requests


def load(
    port: int, requests: list[bytes], workdir: Path, mode: str, amount: float
) -> dict[str, Any]:
    path = workdir / f"requests-{port}-{mode}.json"
    path.write_bytes(orjson.dumps([base64.b64encode(r).decode() for r in requests]))
    argv = [sys.executable, "-m", "tests.benchmarks.loadgen", "127.0.0.1", str(port), str(path)]
    done = subprocess.run(
        [*argv, mode, str(amount), str(SECONDS)], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


async def bench_receiver(services: Services, workdir: Path) -> list[Result]:
    topic = await services.topic()
    wecom, dingtalk = new_simulator(), new_dingtalk_simulator()
    closed_requests = signed_callbacks(wecom, dingtalk, 0, 20000)
    tenants = "\n".join(tenant_toml(sim, "http://127.0.0.1:9") for sim in (wecom, dingtalk))
    receiver_port = devstack.free_port()
    path = config(workdir, services, tenants, topic, services.fresh_target(), receiver_port)
    receiver = orgstream_process("receiver", path, services.logs, receiver_port)
    bare_port = devstack.free_port()
    bare = devstack.start_process(
        "bare-endpoint",
        [sys.executable, "-m", "uvicorn", "tests.benchmarks.bare_app:app", "--host", "127.0.0.1",
         "--port", str(bare_port), "--log-level", "warning", "--no-access-log"],
        services.logs,
        bare_port,
    )  # fmt: skip
    try:
        ours = load(receiver_port, closed_requests[:20000], workdir, "closed", CONNECTIONS)
        theirs = load(bare_port, closed_requests[:20000], workdir, "closed", CONNECTIONS)
        processes = await _with_processes(services, workdir, tenants, topic, closed_requests)
        rate_requests = signed_callbacks(wecom, dingtalk, 20000, int(RATE * SECONDS) + 100)
        ours_at_rate = load(receiver_port, rate_requests, workdir, "open", RATE)
        theirs_at_rate = load(bare_port, rate_requests, workdir, "open", RATE)
        receiver_rss, bare_rss = peak_rss_mb(receiver.process.pid), peak_rss_mb(bare.process.pid)
    finally:
        receiver.stop()
        bare.stop()
    assert ours["ok"] == ours["sent"], f"the receiver refused some: {ours['statuses']}"
    assert ours_at_rate["ok"] == ours_at_rate["sent"], ours_at_rate["statuses"]
    bare_what = "bare Starlette endpoint"
    return [
        Result("1 receiver", "callbacks verified+decrypted+published /s (64 connections)",
               ours["rps"], "req/s", theirs["rps"], bare_what, "≥ 50 % of bare",
               ours["rps"] >= 0.5 * theirs["rps"]),
        Result("1 receiver", "p50 latency at 500/s", ours_at_rate["p50_ms"], "ms",
               theirs_at_rate["p50_ms"], bare_what),
        Result("1 receiver", "p99 latency at 500/s", ours_at_rate["p99_ms"], "ms",
               theirs_at_rate["p99_ms"], bare_what),
        Result("6 memory", "receiver peak RSS (bench 1)", receiver_rss, "MB", bare_rss,
               "bare endpoint's peak RSS", "< 80 MB", receiver_rss < 80),
        *(Result("1 receiver",
                 f"receiver.workers = {n}: callbacks/s on 2 cores (64 connections)",
                 rps, "req/s", ours["rps"], "one process, same run")
          for n, rps in processes.items()),
    ]  # fmt: skip


async def _with_processes(
    services: Services, workdir: Path, tenants: str, topic: str, requests: list[bytes]
) -> dict[int, float]:
    """Callbacks/s of one receiver served by N processes (`receiver.workers`): they share the
    socket, and the broker and the load generator share the same 2 cores."""
    measured = {}
    for processes in (2, 3):
        where = workdir / f"receiver-{processes}-processes"
        port = devstack.free_port()
        path = config(where, services, tenants, topic, services.fresh_target(), port,
                      receiver_workers=processes)  # fmt: skip
        receiver = orgstream_process("receiver", path, services.logs, port,
                                     f"receiver-{processes}-processes")  # fmt: skip
        try:
            result = load(port, requests[:20000], where, "closed", CONNECTIONS)
        finally:
            receiver.stop()
        assert result["ok"] == result["sent"], result["statuses"]
        measured[processes] = float(result["rps"])
    return measured


async def _main() -> None:
    from tests.benchmarks.stack import services

    workdir = Path(".orgstream/bench")
    async with services(workdir) as running:
        for result in await bench_receiver(running, workdir):
            print(result.to_dict())


if __name__ == "__main__":
    asyncio.run(_main())
