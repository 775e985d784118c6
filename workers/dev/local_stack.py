"""`orgstream dev`: the stack on this machine until Ctrl-C, ready for a real WeCom to call."""

from __future__ import annotations

import asyncio
import secrets
import signal
from pathlib import Path
from urllib.parse import urlsplit

from schemas.config import load_settings
from workers.dev import devstack

KAFKA_PORT, SCIM_PORT, RECEIVER_PORT, DIRECTORY_PORT, CONSOLE_PORT = 19092, 18000, 8080, 8090, 8070


def prepare_dev(workdir: Path) -> Path:
    """The dev config, written once with fresh throwaway keys, then kept (edit it freely)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "dev.toml"
    if not config.exists():
        # The directory feed on, and the directory served over SCIM with a token of its own.
        served = f"[feed]\nenabled = true\n\n[directory]\nport = {DIRECTORY_PORT}\n\n"
        # The console, with one operator whose token is in this file.
        served += (
            f'[console]\nport = {CONSOLE_PORT}\n\n[[console.users]]\nname = "dev"\n'
            f'role = "operator"\ntoken = "{secrets.token_urlsafe(24)}"\n\n'
        )
        tenants = served + devstack.random_wecom_tenant(
            "dev", directory_token=secrets.token_urlsafe(24)
        )
        text = devstack.dev_config(
            KAFKA_PORT,
            f"http://127.0.0.1:{SCIM_PORT}/v2",
            RECEIVER_PORT,
            secrets.token_urlsafe(16),
            tenants,
            store=f"sqlite:///{workdir / 'orgstream.db'}",
        )
        config.write_text(text, encoding="utf-8")
    return config


async def run_dev(config: Path, run_all: devstack.StackRunner) -> int:
    workdir = config.parent
    settings = load_settings(config)
    kafka_port = urlsplit(f"//{settings.kafka.bootstrap_servers}").port or 9092
    scim_port = urlsplit(settings.scim.base_url).port or 80
    token = settings.scim.bearer_token.reveal() if settings.scim.bearer_token else None
    logs = workdir / "logs"
    broker = devstack.start_tansu(kafka_port, logs)
    scim = devstack.start_scim2_server(scim_port, logs, token)
    try:
        await devstack.create_topics(settings.kafka.bootstrap_servers, list(settings.kafka.topics))
        print(f"orgstream dev: config {config}, logs {logs}/")
        print(f"  Kafka (Tansu)   {settings.kafka.bootstrap_servers}")
        print(f"  SCIM target     {settings.scim.base_url}")
        for tenant in settings.tenants:
            print(
                f"  callback URL    http://{settings.receiver.host}:{settings.receiver.port}"
                f"/callbacks/{tenant.vendor}/{tenant.id}"
            )
            if tenant.directory_token:
                print(
                    f"  SCIM directory  http://{settings.directory.host}:"
                    f"{settings.directory.port}/scim/v2/{tenant.id}/ (its directory_token)"
                )
        if settings.console.users:
            print(
                f"  console         http://{settings.console.host}:{settings.console.port}/"
                f" (a console.users token from {config})"
            )
        print("Ctrl-C stops everything.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_all(settings, stop)
    finally:
        scim.stop()
        broker.stop()
    return 0
