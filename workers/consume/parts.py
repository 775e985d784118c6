"""A worker's parts, opened together and closed together: the store (history, parked events,
the guard's ledger, sync runs), the per-tenant appliers, the one producer and the outcome
dispatcher. The worker, `orgstream sync` and `orgstream replay` all start from here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from schemas.config import Settings
from schemas.event import ContactEvent, decode
from schemas.mapping.attributes import unmanaged_attributes
from schemas.topics import dead_letter_topic, new_traceparent
from workers.apply.appliers import Appliers
from workers.apply.guard import DeletionGuard
from workers.apply.mapping_check import check_mappings
from workers.apply.record_versions import RecordVersionGate
from workers.apply.records import MirrorSource, event_of_record
from workers.consume.outcome import Handoff, OutcomeDispatcher
from workers.kafka.producer import Producer
from workers.store.database import Database
from workers.store.history import HistoryStore, open_history
from workers.store.ledger import DeletionLedger, open_ledger
from workers.store.mirror import Mirror
from workers.store.pace_board import PaceBoard, open_pace_board
from workers.store.parking import ParkingLot, open_parking
from workers.store.sink_versions import open_sink_versions
from workers.store.sync_runs import SyncRuns, open_runs
from workers.store.target_ledger import open_ledger_database


@dataclass(frozen=True)
class WorkerParts:
    history: HistoryStore
    parking: ParkingLot
    runs: SyncRuns
    ledger: DeletionLedger
    target_ledgers: Database
    board: PaceBoard
    appliers: Appliers
    producer: Producer
    dispatcher: OutcomeDispatcher


@dataclass(frozen=True)
class RecordPath:
    """The SCIM path reading the feed's records: appliers that read the mirror, never the
    vendor, a dispatcher whose dead letters go to its group's own topic, the decoder, and the
    versions it applied (none while planning)."""

    appliers: Appliers
    dispatcher: OutcomeDispatcher
    topic: str
    decode: Callable[[bytes], ContactEvent]
    versions: RecordVersionGate | None
    handoff: Handoff

    async def aclose(self) -> None:
        await self.appliers.aclose()
        if self.versions is not None:
            await self.versions.aclose()


def record_path(
    settings: Settings,
    parts: WorkerParts,
    mirror: Mirror,
    planning: bool = False,
    verify: bool = False,
    versioned: bool = True,
) -> RecordPath:
    """`versioned`: skip records older than one applied (the worker); a replay applies what
    it selects, and neither a dry run nor a replay keeps versions."""
    kafka = settings.kafka
    guard = None if planning else DeletionGuard(settings.guard, parts.ledger, parts.parking)
    appliers = Appliers(
        settings,
        guard,
        planning,
        source_of=lambda tenant: MirrorSource(mirror, tenant.id),
        ledgers=parts.target_ledgers,
        verify=verify,
        board=parts.board,
        unmanaged=unmanaged_attributes(settings.feed.exclude_fields),
    )
    dispatcher = OutcomeDispatcher(
        kafka, parts.producer, parts.history, parts.parking,
        settings.worker.redrive_interval_seconds,
        dead_letter_topic(kafka.directory_topic, kafka.consumer_group),
    )  # fmt: skip
    versions = None
    if versioned and not planning:
        versions = RecordVersionGate(open_sink_versions(settings.store.url, kafka.consumer_group))

    async def to_resolver(hint: ContactEvent) -> None:
        """A hint parked before the feed was on goes to the resolver, which re-resolves it."""
        await parts.producer.publish([hint], new_traceparent())

    handoff = Handoff(decode, to_resolver)
    return RecordPath(
        appliers, dispatcher, kafka.directory_topic, event_of_record, versions, handoff
    )


@contextlib.asynccontextmanager
async def worker_parts(
    settings: Settings, planning: bool = False, verify: bool = False
) -> AsyncIterator[WorkerParts]:
    """`planning`: targets that only write down their writes, and no deletion guard (nothing
    is deleted); `verify`: ledger ids checked against the target before they are trusted
    (a replay); the rest is the real thing."""
    async with contextlib.AsyncExitStack() as opened:  # each closed, whatever fails after it
        url = settings.store.url
        history = open_history(url)
        opened.push_async_callback(history.aclose)
        parking = open_parking(url)
        opened.push_async_callback(parking.aclose)
        runs = open_runs(url)
        opened.push_async_callback(runs.aclose)
        ledger = open_ledger(url)
        opened.push_async_callback(ledger.aclose)
        target_ledgers = open_ledger_database(url)
        opened.push_async_callback(target_ledgers.aclose)
        board = open_pace_board(url)
        opened.push_async_callback(board.aclose)
        guard = None if planning else DeletionGuard(settings.guard, ledger, parking)
        # With the feed on these read the vendor for the resolver, the walk and a sync's dry
        # run, which plans as the feed's appliers write: excluded fields left to the target.
        excluded = settings.feed.exclude_fields if settings.feed.enabled else ()
        appliers = Appliers(
            settings, guard, planning, ledgers=target_ledgers, verify=verify, board=board,
            unmanaged=unmanaged_attributes(excluded),
        )  # fmt: skip
        opened.push_async_callback(appliers.aclose)
        await check_mappings(settings, appliers)
        producer = Producer(settings.kafka.bootstrap_servers, settings.kafka.topic)
        opened.push_async_callback(producer.stop)
        dispatcher = OutcomeDispatcher(
            settings.kafka, producer, history, parking, settings.worker.redrive_interval_seconds
        )
        yield WorkerParts(
            history, parking, runs, ledger, target_ledgers, board, appliers, producer, dispatcher
        )
