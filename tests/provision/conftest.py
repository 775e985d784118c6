"""A provisioning-enabled WeCom (or DingTalk) tenant served in process: the directory server's
app with the provisioning path, writing into a simulated vendor (its real write API, over
ASGI) and reading back into a mirror and index on SQLite and PostgreSQL, as `orgstream
directory` does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.config import Settings, parse_settings
from schemas.record import DirectoryRecord, decode_record
from tests.stores import store_url
from workers.apply.mapping import Namespace
from workers.dev.harness import new_dingtalk_simulator, new_simulator
from workers.directory.app import create_directory_app
from workers.directory.indexer import DirectoryIndexer
from workers.directory.reader import DirectoryReader
from workers.provision.guard import ProvisioningGuard
from workers.provision.provisioner import Provisioner
from workers.provision.refresh import Refresher
from workers.simulator.dingtalk import DingTalkSimulator
from workers.simulator.dingtalk_api import DingTalkApi
from workers.simulator.wecom import WeComSimulator
from workers.simulator.wecom_api import WeComApi
from workers.store.directory_index import open_directory_index
from workers.store.history import HistoryQuery, HistoryStore, open_history
from workers.store.ledger import open_ledger
from workers.store.mirror import open_mirror
from workers.vendors.dingtalk import DingTalkDirectory
from workers.vendors.dingtalk_writes import DingTalkWriter
from workers.vendors.source import SourceDirectory
from workers.vendors.wecom import WeComDirectory
from workers.vendors.wecom_writes import WeComWriter
from workers.vendors.writes import DirectoryWriter

WRITE_TOKEN = "acme-provisioning-token"
READ_TOKEN = "acme-directory-token"
BASE = "http://directory.test/scim/v2/acme"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def settings(
    sim: WeComSimulator | DingTalkSimulator, guard: dict[str, Any] | None = None, **keys: Any
) -> Settings:
    """Tenant "acme" of the simulator's vendor, provisioning on."""
    tenant: dict[str, Any] = {
        "id": "acme", "corp_id": sim.corp_id, "callback_token": "t", "api_base": "http://vendor.test",
        "directory_token": READ_TOKEN, "provisioning": True, "provisioning_token": WRITE_TOKEN,
    }  # fmt: skip
    if isinstance(sim, WeComSimulator):
        tenant |= {"vendor": "wecom", "encoding_aes_key": sim.encoding_aes_key,
                   "sync_secret": sim.sync_secret}  # fmt: skip
    else:
        tenant |= {"vendor": "dingtalk", "aes_key": sim.aes_key, "app_key": sim.app_key,
                   "app_secret": sim.app_secret}  # fmt: skip
    tenant |= keys
    raw = {"tenants": [tenant], "feed": {"enabled": True}, "guard": guard or {}}
    return parse_settings(raw, environ={})


class PublishedRecords:
    """The directory feed, in memory: what the provisioning path published to it."""

    def __init__(self) -> None:
        self.records: list[DirectoryRecord] = []

    async def send_all(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        assert topic == "orgstream.directory"
        self.records += [decode_record(value) for _, value in records]


@dataclass
class Provisioned:
    sim: WeComSimulator | DingTalkSimulator
    api: WeComApi | DingTalkApi
    client: httpx.AsyncClient
    history: HistoryStore
    published: list[DirectoryRecord]  # what went to the directory feed

    async def send(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str = WRITE_TOKEN
    ) -> httpx.Response:
        return await self.client.request(
            method, f"{BASE}/{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    async def create_user(self, user_name: str, **attributes: Any) -> dict[str, Any]:
        body = {"schemas": [CORE_USER], "userName": user_name, **attributes}
        answer = await self.send("POST", "Users", body)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    async def patch(self, path: str, *operations: dict[str, Any]) -> httpx.Response:
        return await self.send(
            "PATCH", path, {"schemas": [PATCH_OP], "Operations": list(operations)}
        )

    async def outcomes(self) -> list[tuple[str, str]]:
        rows = await self.history.query(HistoryQuery(tenant="acme", limit=1000))
        return [(row.outcome, row.change) for row in reversed(rows)]


@pytest.fixture(params=["sqlite", "postgresql"])
async def provisioned(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Provisioned]:
    sim = new_simulator()
    api = WeComApi(sim)
    config = settings(sim)
    async with store_url(request.param, tmp_path) as url:
        async for made in served(sim, api, config, url):
            yield made


@pytest.fixture(params=["sqlite", "postgresql"])
async def provisioned_dingtalk(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Provisioned]:
    sim = new_dingtalk_simulator()
    async with store_url(request.param, tmp_path) as url:
        async for made in served(sim, DingTalkApi(sim), settings(sim), url):
            yield made


async def served(
    sim: WeComSimulator | DingTalkSimulator, api: WeComApi | DingTalkApi, config: Settings, url: str
) -> AsyncIterator[Provisioned]:
    tenant = config.tenants[0]
    vendor = httpx.ASGITransport(app=api.app)
    mirror, index, history = open_mirror(url), open_directory_index(url), open_history(url)
    reader = DirectoryReader(index, config.directory.leaver_days, max_results=100)
    indexer = DirectoryIndexer(index, mirror, config)
    reads: SourceDirectory
    writer: DirectoryWriter
    if isinstance(sim, WeComSimulator):
        reads = WeComDirectory(tenant.api_base, sim.corp_id, sim.secret, transport=vendor, qps=1000)
        writer = WeComWriter(
            tenant.api_base, sim.corp_id, sim.sync_secret, transport=vendor, qps=1000
        )
    else:
        credentials = (tenant.api_base, sim.app_key, sim.app_secret)
        reads = DingTalkDirectory(*credentials, transport=vendor, qps=1000)
        writer = DingTalkWriter(*credentials, transport=vendor, qps=1000)
    feed = PublishedRecords()
    refresher = Refresher(tenant, reads, mirror, indexer, feed=(feed, "orgstream.directory"))
    names = Namespace(sim.vendor, sim.corp_id, "acme")
    ledger = open_ledger(url)
    guard = ProvisioningGuard(config.guard, ledger, index)
    provisioner = Provisioner(
        tenant, writer, refresher, reader, index, mirror, history, names.user_name, guard
    )
    await refresher.department("1")  # the root, as the first full sync mirrors it
    app = create_directory_app(config, reader, {"acme": provisioner})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        yield Provisioned(sim, api, client, history, feed.records)
    await provisioner.aclose()
    for store in (mirror, index, history, ledger):
        await store.aclose()
