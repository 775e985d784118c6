"""A directory server over a small mirrored directory of two tenants, on SQLite and on
PostgreSQL, filled the way a worker fills it: records through the mirror and the indexer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.config import Settings, parse_settings
from schemas.record import (
    NO_PARENT,
    DepartmentState,
    DirectoryRecord,
    Membership,
    UserState,
    encode_record,
)
from schemas.types import Entity, Vendor
from tests.stores import store_url
from workers.directory.app import create_directory_app
from workers.directory.indexer import DirectoryIndexer
from workers.directory.reader import DirectoryReader
from workers.store.directory_index import DirectoryIndex, open_directory_index
from workers.store.mirror import Mirror, open_mirror

TOKENS = {"acme": "acme-directory-token", "globex": "globex-directory-token"}
BASE = "http://directory.test/scim/v2"


def settings(**directory: Any) -> Settings:
    tenants = [
        {"id": "acme", "vendor": "wecom", "corp_id": "ww1", "callback_token": "t",
         "encoding_aes_key": "k" * 43, "api_secret": "s", "directory_token": TOKENS["acme"]},
        {"id": "globex", "vendor": "dingtalk", "corp_id": "ding9", "callback_token": "t",
         "aes_key": "k" * 43, "app_key": "ak", "app_secret": "s",
         "directory_token": TOKENS["globex"]},
        {"id": "initech", "vendor": "wecom", "corp_id": "ww3", "callback_token": "t",
         "encoding_aes_key": "k" * 43, "api_secret": "s"},
    ]  # fmt: skip
    raw = {"tenants": tenants, "directory": directory, "feed": {"enabled": True}}
    return parse_settings(raw, environ={})


def user(
    tenant: str,
    userid: str,
    name: str,
    departments: tuple[int, ...],
    version: int = 1,
    active: bool = True,
    leaders: tuple[str, ...] = (),
    **texts: str,
) -> DirectoryRecord:
    vendor: Vendor = "wecom" if tenant != "globex" else "dingtalk"
    state = UserState(
        userid=userid,
        name=name,
        active=active,
        departments=tuple(Membership(str(d), i) for i, d in enumerate(departments)),
        main_department=str(departments[0]) if departments else None,
        direct_leaders=leaders,
        texts=texts,
    )
    return DirectoryRecord(tenant, vendor, "user", userid, version, "full_sync",
                           "2026-11-30T00:00:00.000Z", user=state)  # fmt: skip


def department(
    tenant: str, department_id: int, name: str, parent: int, order: int = 0, version: int = 1
) -> DirectoryRecord:
    vendor: Vendor = "wecom" if tenant != "globex" else "dingtalk"
    state = DepartmentState(str(department_id), name, str(parent) if parent else NO_PARENT, order)
    return DirectoryRecord(tenant, vendor, "department", str(department_id), version,
                           "full_sync", "2026-11-30T00:00:00.000Z", department=state)  # fmt: skip


def deletion(tenant: str, kind: Entity, entity_id: str, version: int) -> DirectoryRecord:
    vendor: Vendor = "wecom" if tenant != "globex" else "dingtalk"
    return DirectoryRecord(tenant, vendor, kind, entity_id, version, "callback",
                           "2026-11-30T00:00:00.000Z", deleted=True)  # fmt: skip


ACME = [
    department("acme", 1, "Acme", 0),
    department("acme", 7, "研发中心", 1, order=2),
    department("acme", 9, "Sales", 1, order=1),
    department("acme", 12, "Platform", 7, order=5),
    user("acme", "zhangwei", "张伟", (7, 1), leaders=("lisi",), title="工程师",
         email="zhang.wei@acme.example", mobile="13800000001", telephone="010-2"),
    user("acme", "lisi", "Li Si", (7,), title="Manager", email="LiSi@Acme.example"),
    user("acme", "wangwu", "Wang Wu", (9,), active=False, title="Sales Rep"),
    user("acme", "alice", "Alice", (12,), email="alice@other.example", telephone="010-1"),
    user("acme", "bob", "Bob", (12, 9), email="bob@acme.example", title="engineer"),
    user("acme", "zhaoliu", "Zhao Liu", (9,)),
    deletion("acme", "user", "zhaoliu", 2),
]  # fmt: skip
GLOBEX = [
    department("globex", 1, "Globex", 0),
    user("globex", "hank", "Hank Scorpio", (1,), email="hank@globex.example"),
]


@dataclass
class Served:
    client: httpx.AsyncClient
    index: DirectoryIndex
    mirror: Mirror
    indexer: DirectoryIndexer

    async def feed(self, *records: DirectoryRecord) -> None:
        for record in records:
            if await self.mirror.apply(record, encode_record(record)):
                await self.indexer.apply(record)

    async def get(self, tenant: str, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"{BASE}/{tenant}/{path}", params=params, headers=auth(tenant))

    async def resources(self, tenant: str, path: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.get(tenant, path, **params)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["Resources"]
        return found

    async def names(self, tenant: str, path: str, **params: Any) -> list[str]:
        """The userNames (Users) or displayNames (Groups) a query returns, in order."""
        return [
            r.get("userName", r.get("displayName", "")) for r in await self.resources(
                tenant, path, **params)
        ]  # fmt: skip


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[tenant]}"}


@pytest.fixture(params=["sqlite", "postgresql"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    async with store_url(request.param, tmp_path) as url:
        config = settings()
        mirror, index = open_mirror(url), open_directory_index(url)
        reader = DirectoryReader(index, config.directory.leaver_days, max_results=50)
        app = create_directory_app(config, reader)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as client:
            served = Served(client, index, mirror, DirectoryIndexer(index, mirror, config))
            await served.feed(*ACME, *GLOBEX)
            yield served
        await mirror.aclose()
        await index.aclose()
