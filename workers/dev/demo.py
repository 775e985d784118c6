"""`orgstream demo` / `make demo`: the dev stack plus a simulated WeCom corp.

Plays a scripted day of directory changes as real signed and encrypted callbacks through the
receiver, the Tansu broker and the worker into scim2-server, prints the resulting SCIM directory
as a tree, and says whether it equals the simulator's directory (exit 0 when it does).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx

from schemas.config import load_settings
from workers.dev import devstack
from workers.dev.harness import (
    SCIM_TOKEN,
    new_simulator,
    post_callback,
    serve_wecom_api,
    tenant_toml,
    wait_converged,
    wait_until_up,
    write_config,
)
from workers.simulator.scenarios import scripted_day
from workers.simulator.views import render_tree
from workers.simulator.wecom import WeComSimulator


async def run_demo(workdir: Path, run_all: devstack.StackRunner) -> int:
    """`run_all` runs the receiver and the worker until its event is set (the command line
    passes its own, so the demo runs exactly what `orgstream dev` runs)."""
    sim = new_simulator()
    kafka_port, scim_port, receiver_port = (devstack.free_port() for _ in range(3))
    logs = workdir / "logs"
    async with serve_wecom_api(sim) as (api_url, _):
        scim_url = f"http://127.0.0.1:{scim_port}/v2"
        config = write_config(
            workdir, tenant_toml(sim, api_url), kafka_port, scim_url, receiver_port
        )
        settings = load_settings(config)
        print(
            f"demo: starting Tansu :{kafka_port}, scim2-server :{scim_port}, "
            f"receiver :{receiver_port} (logs in {logs}/)"
        )
        broker = devstack.start_tansu(kafka_port, logs)
        scim = devstack.start_scim2_server(scim_port, logs, SCIM_TOKEN)
        stop = asyncio.Event()
        try:
            await devstack.create_topics(
                settings.kafka.bootstrap_servers, list(settings.kafka.topics)
            )
            stack = asyncio.create_task(run_all(settings, stop))
            receiver_url = f"http://127.0.0.1:{receiver_port}"
            await wait_until_up(f"{receiver_url}/readyz")
            started = time.monotonic()
            sent = await _play(receiver_url, sim)
            differences, view = await wait_converged(sim, settings.scim.base_url)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            if "stack" in locals():
                await stack
            scim.stop()
            broker.stop()
    print(f"\nSCIM directory after {sent} callbacks ({elapsed:.1f} s):\n")
    print(render_tree(view))
    if differences:
        print("\nThe SCIM directory DIFFERS from the WeCom directory:")
        print("\n".join(f"  {line}" for line in differences))
        return 1
    print("\nThe SCIM directory equals the WeCom directory.")
    return 0


async def _play(receiver_url: str, sim: WeComSimulator) -> int:
    sent = 0
    async with httpx.AsyncClient(timeout=10) as client:
        echo = str(secrets.randbelow(10**19))  # what WeCom's URL verification sends: digits
        handshake = await client.get(
            f"{receiver_url}/callbacks/wecom/acme?{sim.url_verification(echo)}"
        )
        print(f"URL verification: HTTP {handshake.status_code}, echoed {handshake.text!r}")
        handshake.raise_for_status()
        if handshake.text != echo:
            raise RuntimeError(f"the handshake echoed {handshake.text!r}, not {echo!r}")
        for plaintext in scripted_day(sim):
            if plaintext is None:
                print("  (a change WeCom does not call back)")
                continue
            response = await post_callback(client, receiver_url, sim, plaintext)
            change = plaintext.split(b"<ChangeType>")[1].split(b"</ChangeType>")[0].decode()
            print(f"  callback {change:<13} -> HTTP {response.status_code}")
            response.raise_for_status()
            sent += 1
    return sent
