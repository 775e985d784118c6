"""`orgstream directory` as its own process, over a store a worker filled: scim2-tester's
discovery and misc checks, and a client reading it over the network."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from schemas.record import encode_record
from tests.directory.conftest import ACME, GLOBEX, TOKENS
from tests.directory.conftest import settings as directory_settings
from tests.integration.conftest import start_cli
from workers.dev import devstack
from workers.dev.harness import wait_until_up
from workers.directory.indexer import DirectoryIndexer
from workers.store.directory_index import open_directory_index
from workers.store.mirror import open_mirror

pytestmark = pytest.mark.integration


async def fill(url: str) -> None:
    mirror, index = open_mirror(url), open_directory_index(url)
    indexer = DirectoryIndexer(index, mirror, directory_settings())
    try:
        for record in [*ACME, *GLOBEX]:
            if await mirror.apply(record, encode_record(record)):
                await indexer.apply(record)
    finally:
        await mirror.aclose()
        await index.aclose()


def config_text(store: str, port: int) -> str:
    return f"""
[store]
url = "{store}"

[directory]
port = {port}
metrics_port = 0

[[tenants]]
id = "acme"
vendor = "wecom"
corp_id = "ww1"
callback_token = "t"
encoding_aes_key = "{"k" * 43}"
api_secret = "s"
directory_token = "{TOKENS["acme"]}"
"""


@pytest.fixture
async def directory_url(tmp_path: Path) -> AsyncIterator[str]:
    store = f"sqlite:///{tmp_path / 'orgstream.db'}"
    await fill(store)
    port = devstack.free_port()
    config = tmp_path / "orgstream.toml"
    config.write_text(config_text(store, port), encoding="utf-8")
    process = start_cli("directory", config, tmp_path / "directory.log")
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_up(f"{url}/healthz")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def scim_client(directory_url: str) -> Iterator[SyncSCIMClient]:
    with httpx2.Client(
        base_url=f"{directory_url}/scim/v2/acme/",
        headers={"Authorization": f"Bearer {TOKENS['acme']}"},
    ) as http:
        yield SyncSCIMClient(http)


async def test_scim2_tester_discovery_and_misc_checks_pass(scim_client: SyncSCIMClient) -> None:
    def run() -> list[tuple[str, str, str]]:
        scim_client.discover()
        results = check_server(scim_client, include_tags={"discovery", "misc"})
        return [(r.status.name, str(r.title), str(r.reason)) for r in results]

    results = await asyncio.to_thread(run)
    ran = [r for r in results if r[0] != Status.SKIPPED.name]
    assert len(ran) >= 20  # every discovery endpoint, its methods, its 404s, a random URL
    assert [r for r in ran if r[0] != Status.SUCCESS.name] == []


async def test_the_process_answers_over_the_network(directory_url: str) -> None:
    async with httpx.AsyncClient(base_url=f"{directory_url}/scim/v2/acme") as client:
        refused = await client.get("/Users")
        assert refused.status_code == 401
        found = await client.get(
            "/Users",
            params={"filter": 'userName eq "bob"'},
            headers={"Authorization": f"Bearer {TOKENS['acme']}"},
        )
        assert found.status_code == 200
        assert found.headers["content-type"] == "application/scim+json"
        (bob,) = found.json()["Resources"]
        assert bob["meta"]["location"].startswith(f"{directory_url}/scim/v2/acme/Users/")
