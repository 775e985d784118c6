"""Real processes for the integration tests: Tansu, scim2-server, and the orgstream CLI."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from schemas.config import load_settings
from tests.faults import FaultyTarget
from tests.stores import postgres_store_url
from workers.dev import devstack
from workers.dev.harness import (
    SCIM_TOKEN,
    Simulator,
    new_dingtalk_simulator,
    new_feishu_simulator,
    new_simulator,
    post_callback,
    serve,
    serve_dingtalk_api,
    serve_feishu_api,
    serve_wecom_api,
    tenant_toml,
    wait_until_up,
    write_config,
)
from workers.simulator.dingtalk_api import DingTalkApi
from workers.simulator.feishu import FeishuSimulator
from workers.simulator.feishu_api import FeishuApi
from workers.simulator.wecom import WeComSimulator
from workers.simulator.wecom_api import WeComApi
from workers.simulator.wecom_writes import Notify

VendorApi = WeComApi | DingTalkApi | FeishuApi

pytestmark = pytest.mark.integration
DIRECTORY_TOKEN = "directory-token-of-the-tests"  # every tenant's, with `directory=True`
# WeCom's and DingTalk's, with `provisioning=True`
PROVISIONING_TOKEN = "provisioning-token-of-the-tests"


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


@dataclass
class NoidaBroker:
    """noida-db, the second broker: it persists, and its ListOffsets answers are right. Its
    idle consumers spin (docs/brokers.md §6), so only the tests that ask start it."""

    port: int
    log_dir: Path
    process: devstack.ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        data = self.log_dir / f"noida-{self.port}"
        argv = ["noida-db", "start", "--only", "kafka", "--kafka-port", str(self.port)]
        argv = [str(Path(sys.executable).parent / argv[0]), *argv[1:], "--data-dir", str(data)]
        self.process = devstack.start_process("noida", argv, self.log_dir, self.port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def noida(logs_dir: Path) -> Iterator[NoidaBroker]:
    started = NoidaBroker(devstack.free_port(), logs_dir)
    yield started
    started.process.stop()


@pytest.fixture(scope="session", params=["tansu", "noida"])
def any_broker(request: pytest.FixtureRequest) -> Broker | NoidaBroker:
    """Each Kafka-protocol broker we run here, in turn."""
    chosen: Broker | NoidaBroker = request.getfixturevalue(
        "broker" if request.param == "tansu" else "noida"
    )
    return chosen


@pytest.fixture(scope="session")
def scim_server(logs_dir: Path) -> Iterator[str]:
    """One scim2-server process; each stack uses its own tenant path on it."""
    port = devstack.free_port()
    process = devstack.start_scim2_server(port, logs_dir, SCIM_TOKEN, dynamic_tenants=True)
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="session")
def corp_scim_server(logs_dir: Path) -> Iterator[str]:
    """scim2-server with a company's own User extension loaded
    (tests/fixtures/scim/schemas-with-corp-user.json), for mappings into it."""
    port = devstack.free_port()
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "scim"
    files = (
        fixtures / "schemas-with-corp-user.json",
        fixtures / "resource-types-with-corp-user.json",
    )
    process = devstack.start_scim2_server(
        port, logs_dir, SCIM_TOKEN, schema_files=files, dynamic_tenants=True
    )
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="session")
def restrictive_server(logs_dir: Path) -> Iterator[str]:
    """Our own SCIM server as little capable as the least capable real targets, a process of
    its own (tests/restrictive_scim.py); tests read it in full under `…/inspect/v2`."""
    port = devstack.free_port()
    script = Path(__file__).resolve().parents[1] / "restrictive_scim.py"
    argv = [sys.executable, str(script), "--port", str(port), "--token", SCIM_TOKEN]
    argv.append("--with-extension")  # a department's parent told exactly, names repeating
    process = devstack.start_process("restrictive-scim", argv, logs_dir, port)
    yield f"http://127.0.0.1:{port}"
    process.stop()


@dataclass(frozen=True)
class Target:
    """Which SCIM server a stack's tenants write to."""

    url: str
    restrictive: bool


@pytest.fixture(params=["scim2-server", "restrictive"])
def any_target(request: pytest.FixtureRequest) -> Target:
    """scim2-server, then the restrictive server."""
    if request.param == "scim2-server":
        return Target(request.getfixturevalue("scim_server"), restrictive=False)
    return Target(request.getfixturevalue("restrictive_server"), restrictive=True)


def unique_topic() -> str:
    return f"orgstream.test-{secrets.token_hex(4)}"


@dataclass
class Rig:
    """One simulated vendor tenant in a stack: its directory, its API, its SCIM target."""

    sim: Simulator
    api: VendorApi
    scim_url: str


@dataclass
class Stack:
    rigs: list[Rig]
    config: Path
    topic: str
    bootstrap: str
    receiver_url: str
    processes: list[subprocess.Popen[bytes]]  # the receiver, then the worker
    workdir: Path
    worker_metrics_url: str
    receiver_metrics_url: str
    faults: FaultyTarget | None = None  # between the worker and the target, when asked for
    directory_url: str | None = None  # `orgstream directory`, when asked for

    def restart_worker(self, kill: bool = False) -> None:
        """Stop the worker (SIGKILL when `kill`: no clean shutdown, nothing committed on the
        way out) and start a new one in its place."""
        worker = self.processes[1]
        if kill:
            worker.kill()
        else:
            worker.terminate()
        worker.wait(30)
        self.processes[1] = start_cli("worker", self.config, self.workdir / "worker.log")

    # The first tenant's, for the tests that have only one.
    @property
    def sim(self) -> Simulator:
        return self.rigs[0].sim

    @property
    def api(self) -> VendorApi:
        return self.rigs[0].api

    @property
    def scim_url(self) -> str:
        return self.rigs[0].scim_url


def orgstream(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an `orgstream` command against the stack's configuration, as an operator would."""
    return subprocess.run(
        [*devstack.orgstream_command(), *args, "--config", str(stack.config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=devstack.child_environment(),
    )


async def orgstream_async(stack: Stack, *args: str) -> tuple[int, str, str]:
    """`orgstream` as a child without blocking this event loop, which also serves the
    simulated vendor API the command may call: (exit code, stdout, stderr)."""
    child = await asyncio.create_subprocess_exec(
        *devstack.orgstream_command(),
        *args,
        "--config",
        str(stack.config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=devstack.child_environment(),
    )
    async with asyncio.timeout(300):
        out, err = await child.communicate()
    return child.returncode or 0, out.decode(), err.decode()


def start_cli(command: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [*devstack.orgstream_command(), "--log-level", "info", command, "--config", str(config)]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=devstack.child_environment()
        )


async def make_stack(
    broker: Broker,
    scim_server: str,
    workdir: Path,
    vendors: tuple[str, ...] = ("wecom",),
    proxies: dict[str, str] | None = None,
    own_targets: bool = False,
    store: str = "",
    faulty_target: bool = False,
    worker_toml: str = "",
    extra_toml: str = "",
    api_qps: float | None = None,
    workers: int = 1,
    partitions: int = devstack.DEFAULT_PARTITIONS,
    restrictive: bool = False,
    directory: bool = False,
    mirror_in: str = "worker",
    provisioning: bool = False,
    tenant_keys: str = "",
) -> AsyncIterator[Stack]:
    """A fresh company per vendor, topic and group on the shared broker and target; receiver
    and worker as `orgstream receiver` / `orgstream worker` processes. `proxies` maps a vendor
    to the forward proxy its tenant calls the API through; `own_targets` gives each tenant its
    own `[tenants.scim]` target instead of the shared default one; `faulty_target` puts a
    fault-injecting proxy between the worker and scim2-server (the tests read the target
    directly); `worker_toml` adds keys to [worker] (which always gets a free metrics port);
    `extra_toml` adds other top-level tables, such as [guard]; `api_qps` sets every tenant's
    vendor API rate (a full sync of thousands of users needs more than the default 20/s);
    `workers` worker processes in one group, started together, on topics of `partitions`;
    `restrictive`: `scim_server` is the restrictive server, which the tests read in full at
    its `…/inspect/v2` twin of each target; `directory`: the directory feed on and `orgstream
    directory` serving it, every tenant's token `DIRECTORY_TOKEN`; `mirror_in`: which of the
    two processes keeps the mirror; `provisioning`: the WeCom and DingTalk tenants take SCIM
    writes with `PROVISIONING_TOKEN`, and their simulators call the receiver back after each
    write; `tenant_keys`: lines added to every tenant's table."""
    topic = unique_topic()
    suffix = topic.rpartition("-")[2]
    receiver_port = devstack.free_port()
    async with contextlib.AsyncExitStack() as apis:
        faults = None
        worker_side = scim_server
        if faulty_target:
            faults = FaultyTarget(scim_server)
            apis.push_async_callback(faults.aclose)
            worker_side = await apis.enter_async_context(serve(faults.app))
        default_target = f"{scim_server}/{suffix}/v2"  # an empty target of its own
        reading = "/inspect/v2" if restrictive else "/v2"
        rigs, tables = [], []
        for vendor in vendors:
            sim: Simulator
            api: VendorApi
            if vendor == "wecom":
                sim = wecom = new_simulator()
                api_url, api = await apis.enter_async_context(serve_wecom_api(wecom))
            elif vendor == "feishu":
                sim = feishu = new_feishu_simulator()
                api_url, api = await apis.enter_async_context(serve_feishu_api(feishu))
            else:
                sim = dingtalk = new_dingtalk_simulator()
                api_url, api = await apis.enter_async_context(serve_dingtalk_api(dingtalk))
            if provisioning and isinstance(api, WeComApi | DingTalkApi):
                api.notify_with(callbacks_to(f"http://127.0.0.1:{receiver_port}", sim))
            own = f"/{suffix}-{vendor}/v2" if own_targets else None
            read = f"{scim_server}{own}" if own else default_target
            rigs.append(Rig(sim, api, read.removesuffix("/v2") + reading))
            own_url = f"{worker_side}{own}" if own else None
            proxy = (proxies or {}).get(vendor)
            table = tenant_toml(sim, api_url, proxy, own_url, api_qps)
            if provisioning and not isinstance(sim, FeishuSimulator):
                keys = f'provisioning = true\nprovisioning_token = "{PROVISIONING_TOKEN}"\n'
                if isinstance(sim, WeComSimulator):
                    keys += f'sync_secret = "{sim.sync_secret}"\n'
                table = table.replace("[[tenants]]\n", "[[tenants]]\n" + keys)
            if tenant_keys:
                table = table.replace("[[tenants]]\n", f"[[tenants]]\n{tenant_keys}\n")
            tables.append(table)
        metrics_port = devstack.free_port()
        directory_port = devstack.free_port()
        if directory:
            extra_toml += f'\n[feed]\nenabled = true\nmirror_in = "{mirror_in}"\n'
            extra_toml += f"\n[directory]\nport = {directory_port}\n"
            extra_toml += "metrics_port = 0\n"
            tables = [
                t.replace("[[tenants]]\n", f'[[tenants]]\ndirectory_token = "{DIRECTORY_TOKEN}"\n')
                for t in tables
            ]
        receiver_metrics_port = devstack.free_port()
        # Two companies in one target need userNames that tell them apart.
        shared = len(vendors) > 1 and not own_targets
        config = write_config(
            workdir,
            f"[worker]\nmetrics_port = {metrics_port}\n{worker_toml}\n{extra_toml}\n"
            + "\n".join(tables),
            broker.port,
            f"{worker_side}/{suffix}/v2",
            receiver_port,
            topic=topic,
            user_name="{userid}@{tenant}" if shared else "{userid}",
            store=store,
            receiver_metrics_port=receiver_metrics_port,
        )
        if restrictive:  # it keeps no Group in a Group: the extension, as `auto` finds it
            text = config.read_text(encoding="utf-8")
            config.write_text(
                text.replace('department_mode = "nested"', 'department_mode = "auto"')
            )
        await devstack.create_topics(
            broker.bootstrap, list(load_settings(config).kafka.topics), partitions
        )
        processes = [start_cli("receiver", config, workdir / "receiver.log")]
        processes.append(start_cli("worker", config, workdir / "worker.log"))
        for n in range(1, workers):  # the same configuration, but a metrics port of its own
            text = config.read_text(encoding="utf-8")
            mine = workdir / f"orgstream-{n}.toml"
            port = devstack.free_port()
            mine.write_text(
                text.replace(f"metrics_port = {metrics_port}", f"metrics_port = {port}")
            )
            processes.append(start_cli("worker", mine, workdir / f"worker-{n}.log"))
        directory_url = None
        if directory:
            processes.append(start_cli("directory", config, workdir / "directory.log"))
            directory_url = f"http://127.0.0.1:{directory_port}"
        receiver_url = f"http://127.0.0.1:{receiver_port}"
        try:
            await wait_until_up(f"{receiver_url}/healthz")
            if directory_url:
                await wait_until_up(f"{directory_url}/healthz")
            yield Stack(
                rigs,
                config,
                topic,
                broker.bootstrap,
                receiver_url,
                processes,
                workdir,
                f"http://127.0.0.1:{metrics_port}/metrics",
                f"http://127.0.0.1:{receiver_metrics_port}/metrics",
                faults,
                directory_url,
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


@pytest.fixture(params=["sqlite", "postgresql"])
async def stack_on_each_store(
    request: pytest.FixtureRequest, broker: Broker, scim_server: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    """A WeCom stack whose sync history is in SQLite, then in PostgreSQL."""
    if request.param == "sqlite":
        async for made in make_stack(broker, scim_server, tmp_path):
            yield made
        return
    async with postgres_store_url() as url:
        async for made in make_stack(broker, scim_server, tmp_path, store=url):
            yield made


def callbacks_to(receiver_url: str, sim: Simulator) -> Notify:
    """Each write's callback, signed and sent to the receiver as WeCom sends it."""

    async def notify(plaintext: bytes) -> None:
        async with httpx.AsyncClient() as client:
            answer = await post_callback(client, receiver_url, sim, plaintext)
        assert answer.status_code == 200, answer.text

    return notify


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
