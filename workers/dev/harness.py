"""Pieces `orgstream demo` and the integration tests share: simulated vendors with their APIs
on real ports, the stack's configuration for them, sending their callbacks, and waiting for the SCIM
target to converge."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from workers.dev import devstack
from workers.scim.target import ScimTarget
from workers.simulator.dingtalk import DingTalkSimulator
from workers.simulator.dingtalk_api import DingTalkApi
from workers.simulator.feishu import FeishuSimulator
from workers.simulator.feishu_api import FeishuApi
from workers.simulator.views import DirectoryView, scim_view, source_view
from workers.simulator.wecom import WeComSimulator
from workers.simulator.wecom_api import WeComApi

TENANT = "acme"  # the WeCom tenant
DINGTALK_TENANT = "beta"
FEISHU_TENANT = "gamma"
SCIM_TOKEN = "dev-scim-token"
Simulator = WeComSimulator | DingTalkSimulator | FeishuSimulator
_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _aes_key() -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(43))


def new_simulator() -> WeComSimulator:
    return WeComSimulator(
        corp_id=f"ww{secrets.token_hex(8)}",
        token=secrets.token_urlsafe(18),
        encoding_aes_key=_aes_key(),
        secret=secrets.token_urlsafe(24),
        sync_secret=secrets.token_urlsafe(24),
    )


def new_dingtalk_simulator() -> DingTalkSimulator:
    return DingTalkSimulator(
        corp_id=f"ding{secrets.token_hex(16)}",
        app_key=f"ding{secrets.token_hex(8)}",
        app_secret=secrets.token_urlsafe(32),
        token=secrets.token_urlsafe(15),
        aes_key=_aes_key(),
    )


def new_feishu_simulator(encrypted: bool = True) -> FeishuSimulator:
    return FeishuSimulator(
        app_id=f"cli_{secrets.token_hex(8)}",
        app_secret=secrets.token_urlsafe(24),
        tenant_key=secrets.token_hex(8),
        verification_token=secrets.token_urlsafe(24),
        encrypt_key=secrets.token_urlsafe(24) if encrypted else None,
        root_name=FEISHU_TENANT,  # Feishu's root has no name the API gives: the tenant's id
    )


def tenant_of(sim: Simulator) -> str:
    if isinstance(sim, FeishuSimulator):
        return FEISHU_TENANT
    return TENANT if isinstance(sim, WeComSimulator) else DINGTALK_TENANT


@contextlib.asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """An ASGI app on 127.0.0.1:<free port>, as the worker will call it over HTTP."""
    port = devstack.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def serve_wecom_api(sim: WeComSimulator) -> AsyncIterator[tuple[str, WeComApi]]:
    api = WeComApi(sim)
    async with serve(api.app) as url:
        yield url, api


@contextlib.asynccontextmanager
async def serve_dingtalk_api(sim: DingTalkSimulator) -> AsyncIterator[tuple[str, DingTalkApi]]:
    api = DingTalkApi(sim)
    async with serve(api.app) as url:
        yield url, api


@contextlib.asynccontextmanager
async def serve_feishu_api(sim: FeishuSimulator) -> AsyncIterator[tuple[str, FeishuApi]]:
    api = FeishuApi(sim)
    async with serve(api.app) as url:
        yield url, api


def tenant_toml(
    sim: Simulator,
    api_base: str,
    proxy: str | None = None,
    scim_url: str | None = None,
    api_qps: float | None = None,
) -> str:
    """One `[[tenants]]` table for a simulated vendor, optionally with a proxy and an own
    SCIM target."""
    if isinstance(sim, FeishuSimulator):
        lines = [
            f'id = "{FEISHU_TENANT}"',
            'vendor = "feishu"',
            f'app_id = "{sim.app_id}"',
            f'app_secret = "{sim.app_secret}"',
            f'tenant_key = "{sim.tenant_key}"',
            f'verification_token = "{sim.verification_token}"',
        ]
        if sim.encrypt_key:
            lines.append(f'encrypt_key = "{sim.encrypt_key}"')
    elif isinstance(sim, WeComSimulator):
        lines = [
            f'id = "{TENANT}"',
            'vendor = "wecom"',
            f'corp_id = "{sim.corp_id}"',
            f'callback_token = "{sim.token}"',
            f'encoding_aes_key = "{sim.encoding_aes_key}"',
            f'api_secret = "{sim.secret}"',
        ]
    else:
        lines = [
            f'id = "{DINGTALK_TENANT}"',
            'vendor = "dingtalk"',
            f'corp_id = "{sim.corp_id}"',
            f'app_key = "{sim.app_key}"',
            f'app_secret = "{sim.app_secret}"',
            f'callback_mode = "{sim.mode}"',
            f'callback_token = "{sim.token}"',
            f'aes_key = "{sim.aes_key}"',
        ]
    lines.append(f'api_base = "{api_base}"')
    if proxy:
        lines.append(f'proxy = "{proxy}"')
    if api_qps:
        lines.append(f"api_qps = {api_qps}")
    table = "[[tenants]]\n" + "\n".join(lines) + "\n"
    if scim_url:
        table += f'[tenants.scim]\nbase_url = "{scim_url}"\nbearer_token = "{SCIM_TOKEN}"\n'
        # As the default target: scim2-server keeps Groups in Groups, and the tree reads
        # exactly so even where department names repeat.
        table += 'department_mode = "nested"\n'
    return table


def write_config(
    workdir: Path,
    tenants_toml: str,
    kafka_port: int,
    scim_base_url: str,
    receiver_port: int,
    store: str = "",
    topic: str = "orgstream.contact-events",
    user_name: str = "{userid}",
    receiver_metrics_port: int = 0,
    receiver_workers: int = 1,
) -> Path:
    text = devstack.dev_config(
        kafka_port,
        scim_base_url,
        receiver_port,
        SCIM_TOKEN,
        tenants_toml,
        store=store or f"sqlite:///{workdir / 'orgstream.db'}",
        topic=topic,
        user_name=user_name,
        receiver_metrics_port=receiver_metrics_port,
        receiver_workers=receiver_workers,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "orgstream.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def post_callback(
    client: httpx.AsyncClient, receiver_url: str, sim: Simulator, plaintext: bytes
) -> httpx.Response:
    signed = sim.signed_request(plaintext)
    return await client.post(
        callback_url(receiver_url, sim, signed.query_string),
        content=signed.body,
        headers=dict(signed.headers) or {"Content-Type": content_type_of(sim)},
    )


def callback_url(receiver_url: str, sim: Simulator, query_string: str) -> str:
    url = f"{receiver_url}/callbacks/{sim.vendor}/{tenant_of(sim)}"
    return f"{url}?{query_string}" if query_string else url


def content_type_of(sim: Simulator) -> str:
    return "text/xml" if sim.vendor == "wecom" else "application/json"


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
    sim: Simulator, scim_url: str, timeout: float = 60.0
) -> tuple[list[str], DirectoryView]:
    """Poll the target until it equals the source; return what still differs at the deadline."""
    target = ScimTarget(scim_url, SCIM_TOKEN, 10.0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            view = await scim_view(target, sim.vendor, sim.corp_id, sim.department_number)
            differences = source_view(sim).differences(view)
            if not differences or time.monotonic() > deadline:
                return differences, view
            await asyncio.sleep(0.5)
    finally:
        await target.aclose()
