"""The real parts a benchmark runs: Tansu and scim2-server as processes, the simulated vendors'
APIs on real ports in this process, and `orgstream receiver` / `worker` as processes."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from workers.dev import devstack
from workers.dev.harness import SCIM_TOKEN, write_config


@dataclass
class Services:
    logs: Path
    bootstrap: str
    kafka_port: int
    scim_root: str  # scim2-server with a fresh store under every /<name>/v2

    def fresh_target(self) -> str:
        return f"{self.scim_root}/{secrets.token_hex(4)}/v2"

    async def topic(self, partitions: int = 3) -> str:
        name = f"orgstream.bench-{secrets.token_hex(4)}"
        await devstack.create_topics(self.bootstrap, [name, f"{name}.dlq"], partitions)
        return name


@contextlib.asynccontextmanager
async def services(workdir: Path) -> AsyncIterator[Services]:
    logs = workdir / "logs"
    kafka_port, scim_port = devstack.free_port(), devstack.free_port()
    tansu = devstack.start_tansu(kafka_port, logs)
    scim = devstack.start_scim2_server(scim_port, logs, SCIM_TOKEN, dynamic_tenants=True)
    try:
        yield Services(logs, f"127.0.0.1:{kafka_port}", kafka_port, f"http://127.0.0.1:{scim_port}")
    finally:
        scim.stop()
        tansu.stop()


def config(
    workdir: Path,
    services: Services,
    tenants_toml: str,
    topic: str,
    scim_url: str,
    receiver_port: int = 0,
    metrics_port: int = 0,
    receiver_workers: int = 1,
) -> Path:
    extra = f"[worker]\nmetrics_port = {metrics_port}\n\n[sync]\nschedule = false\n\n"
    return write_config(
        workdir,
        extra + tenants_toml,
        services.kafka_port,
        scim_url,
        receiver_port or devstack.free_port(),
        topic=topic,
        receiver_workers=receiver_workers,
    )


def orgstream_process(
    role: str, config_path: Path, logs: Path, port: int, name: str = ""
) -> devstack.ManagedProcess:
    """`orgstream <role>` with the default log level, started once it listens on `port`."""
    argv = [*devstack.orgstream_command(), role, "--config", str(config_path)]
    return devstack.start_process(name or role, argv, logs, port)
