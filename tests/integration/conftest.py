"""Real processes for the integration tests: Tansu, scim2-server, and the orgstream CLI."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from tests.harness import SCIM_TOKEN, new_simulator, serve_wecom_api, wait_until_up, write_config
from tests.simulator.wecom import WeComSimulator
from tests.simulator.wecom_api import WeComApi
from workers import devstack

pytestmark = pytest.mark.integration


@dataclass
class Broker:
    port: int
    log_dir: Path
    process: devstack.ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = devstack.start_tansu(self.port, self.log_dir)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def broker(logs_dir: Path) -> Iterator[Broker]:
    started = Broker(devstack.free_port(), logs_dir)
    yield started
    started.process.stop()


@pytest.fixture(scope="session")
def scim_server(logs_dir: Path) -> Iterator[str]:
    """One scim2-server process; each stack uses its own tenant path on it."""
    port = devstack.free_port()
    process = devstack.start_scim2_server(port, logs_dir, SCIM_TOKEN, dynamic_tenants=True)
    yield f"http://127.0.0.1:{port}"
    process.stop()


def unique_topic() -> str:
    return f"orgstream.test-{secrets.token_hex(4)}"


@dataclass
class Stack:
    sim: WeComSimulator
    api: WeComApi
    config: Path
    topic: str
    bootstrap: str
    receiver_url: str
    scim_url: str
    processes: list[subprocess.Popen[bytes]]


def start_cli(command: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [*devstack.orgstream_command(), "--log-level", "info", command, "--config", str(config)]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=devstack.child_environment()
        )


async def make_stack(broker: Broker, scim_server: str, workdir: Path) -> AsyncIterator[Stack]:
    """A fresh corp, topic and group on the shared broker and target; receiver and worker as
    `orgstream receiver` / `orgstream worker` processes."""
    sim, topic = new_simulator(), unique_topic()
    scim_url = f"{scim_server}/{topic.rpartition('-')[2]}/v2"  # an empty target of its own
    async with serve_wecom_api(sim) as (api_url, api):
        receiver_port = devstack.free_port()
        config = write_config(
            workdir, sim, api_url, broker.port, scim_url, receiver_port, topic=topic
        )
        await devstack.create_topics(broker.bootstrap, [topic, f"{topic}.dlq"])
        processes = [
            start_cli("receiver", config, workdir / "receiver.log"),
            start_cli("worker", config, workdir / "worker.log"),
        ]
        receiver_url = f"http://127.0.0.1:{receiver_port}"
        try:
            await wait_until_up(f"{receiver_url}/healthz")
            yield Stack(
                sim, api, config, topic, broker.bootstrap, receiver_url, scim_url, processes
            )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture
async def stack(broker: Broker, scim_server: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async for made in make_stack(broker, scim_server, tmp_path):
        yield made


async def read_topic(bootstrap: str, topic: str, idle_seconds: float = 2.0) -> list[bytes]:
    """Every record value on the topic, read from the beginning until it goes quiet."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_seconds * 1000))
            if not batch:
                return values
            values.extend(r.value for records in batch.values() for r in records)
    finally:
        await consumer.stop()
