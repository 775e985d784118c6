"""Running the receiver and the worker in this process, until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import structlog

from schemas.config import Settings
from schemas.mapping.attributes import unmanaged_attributes
from workers.apply.appliers import Appliers
from workers.apply.guard import DeletionGuard
from workers.apply.records import MirrorSource
from workers.cli.console_process import console_server
from workers.cli.directory_process import directory_server
from workers.cli.metrics_http import serve_metrics_on
from workers.cli.mirror_stage import mirror_consumer
from workers.cli.receiver_process import receiver_server
from workers.consume.loop import BackgroundJob, Source, Worker
from workers.consume.parts import WorkerParts, record_path, worker_parts
from workers.directory.indexer import DirectoryIndexer
from workers.fullsync.feed_sync import FeedSync
from workers.fullsync.run import SyncContext
from workers.fullsync.schedule import Schedule
from workers.kafka.batches import BatchConsumer
from workers.resolve.resolver import Resolver
from workers.store.directory_index import open_directory_index
from workers.store.history import HistoryStore
from workers.store.mirror import Mirror, open_mirror

log = structlog.get_logger("orgstream.worker")


@contextlib.asynccontextmanager
async def worker_with_store(
    settings: Settings, with_mirror: bool | None = None
) -> AsyncIterator[Worker]:
    """A worker with its store (sync history, parked events, the deletion guard's ledger),
    pruning old history hourly while it runs. `with_mirror`: whether it runs the mirror's
    stage (default: as `[feed] mirror_in` says)."""
    if with_mirror is None:
        with_mirror = settings.feed.mirror_in == "worker"
    async with worker_parts(settings) as parts, contextlib.AsyncExitStack() as feed:
        context = SyncContext(settings.kafka, parts.runs, parts.parking, parts.producer)
        beside: list[BackgroundJob] = []
        appliers, dispatcher, source = parts.appliers, parts.dispatcher, None
        if settings.feed.enabled:
            mirror = open_mirror(settings.store.url)
            feed.push_async_callback(mirror.aclose)
            context.feed = feed_sync(settings, parts, mirror)
            feed.push_async_callback(context.feed.aclose)
            index = open_directory_index(settings.store.url)
            feed.push_async_callback(index.aclose)
            indexer = DirectoryIndexer(index, mirror, settings)
            beside += feed_stages(settings, parts, mirror, indexer, with_mirror)
            path = record_path(settings, parts, mirror)
            feed.push_async_callback(path.aclose)
            appliers, dispatcher = path.appliers, path.dispatcher
            source = Source(path.topic, path.decode, path.versions, path.handoff)
        beside.append(Schedule(settings, parts.appliers, context, time.time()))
        worker = Worker(
            settings.kafka, appliers, dispatcher, parts.producer, settings.worker, beside, source
        )
        pruning = asyncio.create_task(prune_history(parts.history, settings.store.retention_days))
        serve_metrics(settings)
        try:
            yield worker
        finally:
            pruning.cancel()


def feed_sync(settings: Settings, parts: WorkerParts, mirror: Mirror) -> FeedSync:
    """What a full sync needs with the feed on: appliers that bring the target to the mirror
    (guarded like the SCIM sink's, leaving excluded fields' attributes alone), and the
    producer for records and hints."""
    appliers = Appliers(
        settings,
        DeletionGuard(settings.guard, parts.ledger, parts.parking),
        source_of=lambda tenant: MirrorSource(mirror, tenant.id),
        ledgers=parts.target_ledgers,
        board=parts.board,
        unmanaged=unmanaged_attributes(settings.feed.exclude_fields),
    )
    return FeedSync(settings, mirror, appliers, parts.producer)


def feed_stages(
    settings: Settings,
    parts: WorkerParts,
    mirror: Mirror,
    indexer: DirectoryIndexer | None,
    with_mirror: bool,
) -> list[BackgroundJob]:
    """The resolver (hints to records) and, `with_mirror`, the mirror (records to the store,
    and to the directory server's index), each a consumer group of its own beside the
    worker's."""
    kafka = settings.kafka
    resolver = Resolver(settings, parts.appliers, mirror, parts.producer, kafka.resolver_group)
    stages: list[BackgroundJob] = [
        # Where the worker's own group left the hints, the resolver takes over (an upgrade).
        BatchConsumer(kafka.bootstrap_servers, kafka.topic, kafka.resolver_group,
                      resolver.handle, kafka.session_timeout_ms,
                      seed_group=kafka.consumer_group),
    ]  # fmt: skip
    if with_mirror:
        stages.append(mirror_consumer(settings, mirror, indexer, parts.producer))
    return stages


def serve_metrics(settings: Settings) -> None:
    serve_metrics_on("worker", settings.worker.metrics_host, settings.worker.metrics_port)


async def run_worker(settings: Settings) -> None:
    async with worker_with_store(settings) as worker:
        stop_on_signals(worker.stop)
        await worker.run()


async def prune_history(history: HistoryStore, retention_days: int) -> None:
    """Drop history older than the retention, now and every hour after (until cancelled)."""
    while True:
        cutoff = datetime.now(UTC) - timedelta(days=retention_days)
        try:
            removed = await history.prune(cutoff)
        except Exception as exc:  # noqa: BLE001 - a failed prune is retried in an hour
            log.warning("history_prune_failed", error=f"{type(exc).__name__}: {exc}")
        else:
            if removed:
                log.info("history_pruned", removed=removed, before=cutoff.isoformat())
        await asyncio.sleep(3600)


async def run_all(settings: Settings, stop: asyncio.Event) -> None:
    """Receiver, worker, directory server and console side by side (the dev stack); all stop when
    `stop` is set."""
    server = receiver_server(settings)
    # One process runs every part here: the worker keeps the mirror whatever `mirror_in` says.
    mirrored = worker_with_store(settings, with_mirror=True)
    async with mirrored as worker, contextlib.AsyncExitStack() as beside:
        tasks = [asyncio.create_task(server.serve()), asyncio.create_task(worker.run())]
        servers = [server]
        if any(t.directory_token for t in settings.tenants):  # else nobody could read it
            directory = await beside.enter_async_context(directory_server(settings))
            tasks.append(asyncio.create_task(directory.serve()))
            servers.append(directory)
        if settings.console.users:  # else nobody could log in
            console = console_server(settings)
            tasks.append(asyncio.create_task(console.serve()))
            servers.append(console)
        await stop.wait()
        for each in servers:
            each.should_exit = True
        worker.stop()
        await asyncio.gather(*tasks)


def stop_on_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
