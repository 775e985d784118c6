"""What the console reads and acts through: the stores, opened once for the process, and Kafka
(lag, dead letters), asked each time a page needs it, with the same code the CLI uses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from aiokafka.errors import KafkaError

from schemas.config import Settings
from workers.kafka.dlq import DeadLetterRecord, dead_letters
from workers.kafka.lag import GroupLag, LagStage, lag_targets, measure_lag
from workers.store.audit import AuditTrail, open_audit
from workers.store.database import Database
from workers.store.history_pages import HistoryPages, open_history_pages
from workers.store.mirror import Mirror, open_mirror
from workers.store.parking import ParkingLot, open_parking
from workers.store.redriven import RedrivenLog, open_redriven
from workers.store.sync_runs import SyncRuns, open_runs
from workers.store.target_ledger import open_ledger_database

T = TypeVar("T")


class Closable(Protocol):
    async def aclose(self) -> None: ...


S = TypeVar("S", bound=Closable)
# A page waits this long for Kafka, then says it could not be reached.
KAFKA_SECONDS = 30.0


class Unreachable(Exception):
    """Kafka failed or did not answer in time; the page says so instead of failing."""


@dataclass(frozen=True)
class Sources:
    settings: Settings
    history: HistoryPages
    runs: SyncRuns
    audit: AuditTrail
    parking: ParkingLot
    mirror: Mirror
    ledgers: Database  # the SCIM sink's ledger of every target
    redriven: RedrivenLog

    async def lags(self) -> list[GroupLag]:
        """Every stage this configuration runs: the worker, and with the feed on its resolver
        and mirror."""
        targets = lag_targets(self.settings.kafka, self.settings.feed.enabled)
        stages: tuple[LagStage, ...] = (
            ("worker", "resolver", "mirror") if self.settings.feed.enabled else ("worker",)
        )
        bootstrap = self.settings.kafka.bootstrap_servers
        measured = (measure_lag(bootstrap, *targets[stage]) for stage in stages)
        return list(await in_time(asyncio.gather(*measured)))

    async def dead_letters(self) -> list[DeadLetterRecord]:
        return await in_time(dead_letters(self.settings.kafka, self.settings.feed.enabled))


@contextlib.asynccontextmanager
async def open_sources(settings: Settings) -> AsyncIterator[Sources]:
    url = settings.store.url
    async with contextlib.AsyncExitStack() as opened:

        def kept(store: S) -> S:
            opened.push_async_callback(store.aclose)
            return store

        yield Sources(
            settings,
            kept(open_history_pages(url)),
            kept(open_runs(url)),
            kept(open_audit(url)),
            kept(open_parking(url)),
            kept(open_mirror(url)),
            kept(open_ledger_database(url)),
            kept(open_redriven(url)),
        )


async def in_time(work: Awaitable[T]) -> T:
    """`work`, or `Unreachable` when Kafka fails or does not answer within KAFKA_SECONDS."""
    try:
        return await asyncio.wait_for(work, KAFKA_SECONDS)
    except TimeoutError as exc:
        raise Unreachable(f"no answer within {KAFKA_SECONDS:.0f} s") from exc
    except (OSError, KafkaError) as exc:
        raise Unreachable(str(exc) or type(exc).__name__) from exc
