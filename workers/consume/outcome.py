"""An event's outcome, decided and carried out in one place for the consumer loop, the re-drive
of parked events and replay.

`apply_with_retries` applies an event, retrying a brief failure in place, and returns what it
came to as data (`Attempt`); `OutcomeDispatcher.settle` carries an outcome out: the dead-letter
topic, the parking lot, the sync history and the metrics.

| what applying came to        | outcome        | what settling does                           |
|------------------------------|----------------|----------------------------------------------|
| writes made                  | applied        | history (and out of the parking lot)         |
| target already matched       | skipped        | history, with the reason                     |
| brief failure, retries spent | parked         | parked for re-drive (a re-driven one: later) |
| target quarantined           | parked         | the same, at once                            |
| the deletion guard holds it  | held           | held until `approve-deletions`               |
| rejected, retrying can't help| dead_lettered  | DLQ topic with the error, then history       |
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol

import structlog

from schemas.config import KafkaSettings
from schemas.event import ContactEvent
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN, entity_key
from workers import metrics
from workers.apply.applier import TenantApplier
from workers.attempts import Attempts, recording
from workers.errors import DeadLetter, Held, RetryLater, TargetQuarantined
from workers.store.history import HistoryEntry, Outcome
from workers.store.parking import ParkedEvent, ParkingLot

MAX_BACKOFF: Final = 30.0
_MAX_PARKED_BACKOFF: Final = 300.0
log = structlog.get_logger("orgstream.worker")

Result = Literal["done", "transient", "quarantined", "held", "rejected"]


@dataclass(frozen=True)
class Attempt:
    """What applying an event came to: `done` (with the writes made, none when the target
    already matched), or the kind of failure with its detail."""

    result: Result
    detail: str | None = None
    writes: tuple[str, ...] = ()
    retry_after: float | None = None

    @property
    def outcome(self) -> Outcome:
        if self.result == "done":
            return "applied" if self.writes else "skipped"
        if self.result == "held":
            return "held"
        if self.result == "rejected":
            return "dead_lettered"
        return "parked"


async def apply_once(
    applier: TenantApplier,
    event: ContactEvent,
    attempts: Attempts,
    deletions_approved: bool = False,
) -> Attempt:
    """Apply the event once; every failure the applier signals becomes data."""
    try:
        with recording(attempts):
            ops = await applier.apply(event, deletions_approved=deletions_approved)
    except TargetQuarantined as exc:
        return Attempt("quarantined", str(exc), retry_after=exc.retry_after)
    except RetryLater as exc:
        return Attempt("transient", str(exc), retry_after=exc.retry_after)
    except Held as exc:
        return Attempt("held", str(exc))
    except DeadLetter as exc:
        return Attempt("rejected", str(exc))
    if ops.writes:
        return Attempt("done", writes=tuple(ops.writes))
    return Attempt("done", ops.skip_reason)


async def apply_with_retries(
    applier: TenantApplier,
    event: ContactEvent,
    attempts: Attempts,
    retries: int | None,
    pause: Callable[[float], Awaitable[bool]],
) -> tuple[Attempt, int] | None:
    """Apply, retrying a brief failure in place (backing off, honouring `Retry-After`) up to
    `retries` times, or until it works when `retries` is None (nowhere to park it).

    Returns the last attempt and how many runs it took; None when `pause` returned False
    (the worker is stopping), so the event has no outcome yet."""
    runs, delay = 0, 0.5
    while True:
        runs += 1
        attempt = await apply_once(applier, event, attempts)
        if not _retry_in_place(attempt.result, runs, retries):
            return attempt, runs
        wait = min(attempt.retry_after or delay, MAX_BACKOFF)
        attempts.notes.append(f"{attempt.detail}; event retried in {wait:.1f} s")
        log.warning("apply_retry", event_id=event.event_id, error=attempt.detail, wait=wait)
        if not await pause(wait):
            return None
        delay = min(delay * 2, MAX_BACKOFF)


def _retry_in_place(result: Result, runs: int, retries: int | None) -> bool:
    if result not in ("transient", "quarantined"):
        return False
    if retries is None:
        return True
    return result == "transient" and runs <= retries


class History(Protocol):
    async def record(self, entry: HistoryEntry) -> None: ...


class DeadLetterSink(Protocol):
    async def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None: ...


@dataclass(frozen=True)
class Delivery:
    """Where the record being settled came from: the topic (`origin` names the offset, or
    the replayed one), or the parking lot (`parked`)."""

    value: bytes
    key: bytes | None
    origin: str
    parked: ParkedEvent | None = None


@dataclass(frozen=True)
class Settled:
    """The facts recorded with an outcome."""

    outcome: Outcome
    detail: str | None = None
    runs: int = 1
    seconds: float = 0.0
    writes: tuple[str, ...] = ()

    @classmethod
    def of(cls, attempt: Attempt, runs: int, seconds: float) -> Settled:
        """What an attempt settles as. An event parked or held is recorded as one run that
        took no time: its time is counted when it is finally applied."""
        if attempt.outcome in ("parked", "held"):
            runs, seconds = 1, 0.0
        return cls(attempt.outcome, attempt.detail, runs, seconds, attempt.writes)


class VersionGate(Protocol):
    """Keeps a sink from applying a record older than one it applied (the feed's records)."""

    async def superseded(self, payload: bytes) -> str | None: ...

    async def applied(self, payload: bytes) -> None: ...


@dataclass(frozen=True)
class Handoff:
    """For a parked payload the path cannot read but another stage can (a hint parked before
    the feed was switched on): how to read it (`SchemaError` if it is not one either), and how
    to give it to that stage."""

    decode: Callable[[bytes], ContactEvent]
    hand_over: Callable[[ContactEvent], Awaitable[None]]


class OutcomeDispatcher:
    """Carries out outcomes. Parking needs the store: without one, nothing is parked or held
    (the loop then retries in place)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        dead_letters: DeadLetterSink,
        history: History | None,
        parking: ParkingLot | None,
        redrive_interval_seconds: float,
        dlq_topic: str | None = None,
    ) -> None:
        """`dlq_topic`: the group's dead-letter topic (default: `kafka.dlq_topic`)."""
        self._dlq_topic = dlq_topic or kafka.dlq_topic
        self._dead_letters = dead_letters
        self._history = history
        self.parking = parking
        self._redrive_interval = redrive_interval_seconds

    async def settle(
        self,
        delivery: Delivery,
        event: ContactEvent | None,
        settled: Settled,
        attempts: Attempts | None = None,
    ) -> None:
        """Carry out `settled.outcome` for the record; `event` is None when it could not be
        decoded (it can only be dead-lettered then)."""
        notes = attempts.notes if attempts is not None else []
        outcome, parked = settled.outcome, delivery.parked
        if outcome == "dead_lettered":
            await self._dead_letter(delivery, settled.detail or "")
        elif outcome in ("parked", "held"):
            assert event is not None
            if parked is not None and outcome == "parked":
                await self._retry_later(parked, settled.detail or "")
                return  # still parked: not a new outcome
            await self._park(delivery, event, outcome, settled.detail or "")
        elif parked is not None:
            await self._parking().remove(parked.id)
        if event is not None:
            await self._record(event, delivery.origin, settled, notes)

    async def _dead_letter(self, delivery: Delivery, error: str) -> None:
        headers = [(HEADER_ERROR, error.encode()), (HEADER_ORIGIN, delivery.origin.encode())]
        await self._dead_letters.send(self._dlq_topic, delivery.value, delivery.key, headers)
        log.error("dead_lettered", error=error)
        if delivery.parked is not None:
            await self._parking().remove(delivery.parked.id)

    async def _park(
        self,
        delivery: Delivery,
        event: ContactEvent,
        state: Literal["parked", "held"],
        reason: str,
    ) -> None:
        if delivery.parked is not None:  # a re-driven event the guard holds again
            await self._parking().hold(delivery.parked.id, reason)
            return
        now = time.time()
        key = entity_key(event.entity, event.entity_id)
        retry_at = now + self._redrive_interval
        await self._parking().park(
            event.tenant, key, delivery.value, delivery.origin, state, reason, now, retry_at
        )
        log.warning(state, event_id=event.event_id, entity_id=event.entity_id, reason=reason)

    async def _retry_later(self, parked: ParkedEvent, reason: str) -> None:
        backoff = self._redrive_interval * 2 ** (parked.attempts + 1)
        next_attempt = time.time() + min(backoff, _MAX_PARKED_BACKOFF)
        await self._parking().retry_later(parked.id, next_attempt, reason)

    def _parking(self) -> ParkingLot:
        if self.parking is None:
            raise AssertionError("parking an event needs the store")
        return self.parking

    async def _record(
        self, event: ContactEvent, origin: str, settled: Settled, notes: list[str]
    ) -> None:
        metrics.EVENTS.labels(event.tenant, settled.outcome).inc()
        if settled.outcome in ("applied", "skipped"):
            metrics.APPLY_SECONDS.labels(event.tenant).observe(settled.seconds)
            freshness = _seconds_since(event.occurred_at)
            if freshness is not None:
                metrics.FRESHNESS_SECONDS.labels(event.tenant).observe(freshness)
        if self._history is None:
            return
        entry = HistoryEntry.of(
            event,
            settled.outcome,
            origin,
            settled.runs,
            settled.seconds,
            notes,
            settled.writes,
            settled.detail,
        )
        try:
            await self._history.record(entry)
        except Exception as exc:  # noqa: BLE001 - the history must never stop the sync itself
            log.error("history_write_failed", error=f"{type(exc).__name__}: {exc}")


def _seconds_since(moment: str) -> float | None:
    try:
        return max(0.0, time.time() - datetime.fromisoformat(moment).timestamp())
    except ValueError:
        return None
