"""`orgstream directory`: the SCIM server over the mirror, on `directory.port`, with its
metrics on `directory.metrics_port`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
import uvicorn

from schemas.config import Settings
from workers.cli.metrics_http import serve_metrics_on
from workers.cli.mirror_stage import own_mirror_stage
from workers.cli.pull import pull_on_schedule
from workers.directory.app import create_directory_app
from workers.directory.reader import DirectoryReader
from workers.provision.setup import open_provisioners
from workers.store.directory_index import open_directory_index

log = structlog.get_logger("orgstream.directory")


@contextlib.asynccontextmanager
async def directory_server(settings: Settings) -> AsyncIterator[uvicorn.Server]:
    """The server, ready to `serve()`, and its store, closed on the way out."""
    directory = settings.directory
    if not settings.feed.enabled:
        log.warning("directory_without_feed", reason="[feed] enabled = false: no worker keeps "
                    "the mirror this server reads")  # fmt: skip
    closed = [t.id for t in settings.tenants if t.directory_token is None]
    if closed:
        log.info("directory_closed_tenants", tenants=closed, reason="no directory_token")
    index = open_directory_index(settings.store.url)
    reader = DirectoryReader(index, directory.leaver_days, directory.max_results)
    async with open_provisioners(settings, reader, index) as provisioners:
        if provisioners:
            log.info("directory_provisioning", tenants=sorted(provisioners))
        app = create_directory_app(settings, reader, provisioners)
        config = uvicorn.Config(
            app,
            host=directory.host,
            port=directory.port,
            log_level="warning",
            access_log=False,  # ours says the same without query strings (filters hold PII)
            lifespan="off",
        )
        try:
            yield uvicorn.Server(config)
        finally:
            await index.aclose()


async def run_directory(settings: Settings) -> None:
    """The server; with `[feed] mirror_in = "directory"`, the mirror's stage beside it."""
    directory = settings.directory
    serve_metrics_on("directory", directory.metrics_host, directory.metrics_port)
    async with directory_server(settings) as server, contextlib.AsyncExitStack() as beside:
        pulling = asyncio.create_task(pull_on_schedule(settings))
        beside.callback(pulling.cancel)
        if not (settings.feed.enabled and settings.feed.mirror_in == "directory"):
            await server.serve()
            return
        stage = await beside.enter_async_context(own_mirror_stage(settings))
        following = asyncio.create_task(stage.run())
        try:
            await server.serve()
        finally:
            stage.stop()
            await following
