"""`orgstream receiver`: the callback port, and the receiver's metrics on a port of their own.

One process by default. With `receiver.workers = N`, uvicorn runs N processes that share the
listening socket, and the metrics of all of them are summed (prometheus-client's
multiprocess mode) and served by the parent.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import prometheus_client
import uvicorn
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from receiver import FACTORY, create_app
from schemas.config import CONFIG_ENV, ConfigError, ReceiverSettings, Settings


def uvicorn_config(app: Starlette | str, receiver: ReceiverSettings) -> uvicorn.Config:
    """Every receiver process runs with these limits (docs/event-path.md): beyond
    `limit_concurrency` connections and requests at once uvicorn answers 503 at once instead
    of queueing without bound; an idle keep-alive connection closes after `keep_alive_seconds`.
    `app` is the app, or the import name of its factory for several processes."""
    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=receiver.workers if isinstance(app, str) else 1,
        host=receiver.host,
        port=receiver.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        limit_concurrency=receiver.limit_concurrency,
        timeout_keep_alive=receiver.keep_alive_seconds,
    )


def receiver_server(settings: Settings) -> uvicorn.Server:
    """One receiver in this process (the dev stack runs it beside the worker)."""
    app = create_app(settings)
    serve_metrics(settings.receiver, app.state.metrics.registry)
    return uvicorn.Server(uvicorn_config(app, settings.receiver))


def run_receiver(settings: Settings, config: Path) -> None:
    if settings.receiver.workers == 1:
        asyncio.run(receiver_server(settings).serve())
        return
    with tempfile.TemporaryDirectory(prefix="orgstream-receiver-metrics-") as shared:
        # Read by every process uvicorn starts, before it imports prometheus-client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        os.environ[CONFIG_ENV] = str(config.resolve())
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
        serve_metrics(settings.receiver, registry)
        processes = uvicorn_config(FACTORY, settings.receiver)
        Multiprocess(processes, sockets=[processes.bind_socket()]).run()


def serve_metrics(receiver: ReceiverSettings, registry: CollectorRegistry) -> None:
    if not receiver.metrics_port:
        return
    try:
        prometheus_client.start_http_server(
            receiver.metrics_port, receiver.metrics_host, registry=registry
        )
    except OSError as exc:
        raise ConfigError(
            f"receiver.metrics_port: cannot listen on {receiver.metrics_port}: {exc.strerror}"
        ) from exc
