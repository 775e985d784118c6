"""Pieces the demo and the integration tests share: a simulated WeCom on a real port, the stack's
configuration for it, sending its callbacks, and waiting for the target to converge."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn

from tests.simulator.views import DirectoryView, scim_view, source_view
from tests.simulator.wecom import WeComSimulator
from tests.simulator.wecom_api import WeComApi
from workers import devstack
from workers.scim import ScimTarget

TENANT = "acme"
SCIM_TOKEN = "dev-scim-token"


def new_simulator() -> WeComSimulator:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return WeComSimulator(
        corp_id=f"ww{secrets.token_hex(8)}",
        token=secrets.token_urlsafe(18),
        encoding_aes_key="".join(secrets.choice(alphabet) for _ in range(43)),
        secret=secrets.token_urlsafe(24),
    )


@contextlib.asynccontextmanager
async def serve_wecom_api(sim: WeComSimulator) -> AsyncIterator[tuple[str, WeComApi]]:
    """The simulator's API on 127.0.0.1:<free port>, as the worker will call it over HTTP."""
    api = WeComApi(sim)
    port = devstack.free_port()
    server = uvicorn.Server(
        uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", api
    finally:
        server.should_exit = True
        await task


def write_config(
    workdir: Path,
    sim: WeComSimulator,
    api_base: str,
    kafka_port: int,
    scim_base_url: str,
    receiver_port: int,
    store: str = "",
    topic: str = "orgstream.contact-events",
) -> Path:
    tenant = f"""[[tenants]]
id = "{TENANT}"
vendor = "wecom"
corp_id = "{sim.corp_id}"
callback_token = "{sim.token}"
encoding_aes_key = "{sim.encoding_aes_key}"
api_secret = "{sim.secret}"
api_base = "{api_base}"
"""
    text = devstack.dev_config(
        kafka_port,
        scim_base_url,
        receiver_port,
        SCIM_TOKEN,
        tenant,
        store=store or f"sqlite:///{workdir / 'orgstream.db'}",
        topic=topic,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "orgstream.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def post_callback(
    client: httpx.AsyncClient, receiver_url: str, sim: WeComSimulator, plaintext: bytes
) -> httpx.Response:
    signed = sim.signed_request(plaintext)
    return await client.post(
        f"{receiver_url}/callbacks/wecom/{TENANT}?{signed.query_string}",
        content=signed.body,
        headers={"Content-Type": "text/xml"},
    )


async def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


async def wait_converged(
    sim: WeComSimulator, scim_url: str, timeout: float = 60.0
) -> tuple[list[str], DirectoryView]:
    """Poll the target until it equals the source; return what still differs at the deadline."""
    target = ScimTarget(scim_url, SCIM_TOKEN, 10.0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            view = await scim_view(target, "wecom", sim.corp_id)
            differences = source_view(sim).differences(view)
            if not differences or time.monotonic() > deadline:
                return differences, view
            await asyncio.sleep(0.5)
    finally:
        await target.aclose()
