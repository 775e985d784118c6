"""The worker loop: consume, apply, and commit only once each event has an outcome.

Outcomes: applied, or skipped (with the reason) when the target already matched; retried in
place while a failure looks brief (`worker.retries_before_parking` times); parked when it
outlasts that, when the tenant's SCIM target is quarantined, or when a department it needs is
missing; held when the mass-deletion guard stops it; dead-lettered with the error in the record
headers when retrying cannot help. Parked and held events live in the store (parking.py), so
their offsets are committed and the partition keeps moving; a re-drive loop applies them later,
one entity's events in order. Every outcome goes to the sync history.

Within a fetched batch each tenant is a lane of its own: one tenant's events run in order,
while tenants run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, Final, Literal, Protocol, TypeAlias

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from schemas.config import KafkaSettings, WorkerSettings
from schemas.event import ContactEvent, SchemaError, decode
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN
from workers import metrics
from workers.apply import TenantApplier
from workers.attempts import Attempts, recording
from workers.errors import DeadLetter, Held, RetryLater, TargetQuarantined
from workers.history import HistoryEntry, Outcome
from workers.lag import measure_lag
from workers.parking import ParkedEvent, ParkingLot, entity_key
from workers.tenants import Appliers

_MAX_BACKOFF: Final = 30.0
_MAX_PARKED_BACKOFF: Final = 300.0
_CLAIM_SECONDS: Final = 60.0  # a re-drive that takes longer than this may be repeated: harmless
log = structlog.get_logger("orgstream.worker")
Record: TypeAlias = "ConsumerRecord[Any, Any]"


class History(Protocol):
    async def record(self, entry: HistoryEntry) -> None: ...


class BackgroundJob(Protocol):
    """Runs beside the consumer until cancelled (the full-sync schedule)."""

    async def run_forever(self) -> None: ...


class Worker:
    def __init__(
        self,
        kafka: KafkaSettings,
        appliers: Appliers,
        history: History | None = None,
        parking: ParkingLot | None = None,
        settings: WorkerSettings | None = None,
        schedule: BackgroundJob | None = None,
    ) -> None:
        self._kafka = kafka
        self._schedule = schedule
        self._appliers = appliers
        self._history = history
        self._parking = parking
        self._settings = settings or WorkerSettings()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self._kafka.topic,
            bootstrap_servers=self._kafka.bootstrap_servers,
            group_id=self._kafka.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._kafka.session_timeout_ms,
            heartbeat_interval_ms=max(300, self._kafka.session_timeout_ms // 4),
        )
        dlq = AIOKafkaProducer(bootstrap_servers=self._kafka.bootstrap_servers, acks="all")
        await self._start(consumer, dlq)
        log.info("worker_started", topic=self._kafka.topic, group=self._kafka.consumer_group)
        redriving = asyncio.create_task(self._redrive_forever(dlq))
        measuring = asyncio.create_task(self._measure_lag_forever())
        background = [redriving, measuring]
        if self._schedule is not None:  # full syncs and failed-callback recovery
            background.append(asyncio.create_task(self._schedule.run_forever()))
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=200)
                if batches:
                    await self._process(consumer, dlq, batches)
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await consumer.stop()
            await dlq.stop()
            await self._appliers.aclose()
            log.info("worker_stopped")

    async def _start(self, consumer: AIOKafkaConsumer, dlq: AIOKafkaProducer) -> None:
        """Wait for the broker: a worker started before Kafka just waits for it."""
        for client in (consumer, dlq):
            delay = 0.5
            while True:
                try:
                    await client.start()
                    break
                except KafkaError as exc:
                    log.warning("broker_unreachable", error=type(exc).__name__, retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_BACKOFF)

    async def _process(
        self,
        consumer: AIOKafkaConsumer,
        dlq: AIOKafkaProducer,
        batches: dict[TopicPartition, list[Record]],
    ) -> None:
        """Run the batch in one lane per tenant, then commit, per partition, every offset below
        the first record without an outcome (all of them unless asked to stop).

        A tenant's events run one after another, whatever their partition, so two events of
        one tenant never race to create the same department; tenants run side by side."""
        lanes: dict[str, list[tuple[Record, ContactEvent | SchemaError]]] = defaultdict(list)
        for records in batches.values():
            for record in records:
                try:
                    event: ContactEvent | SchemaError = decode(record.value)
                except SchemaError as exc:
                    event = exc
                tenant = event.tenant if isinstance(event, ContactEvent) else ""
                lanes[tenant].append((record, event))
        done: set[tuple[int, int]] = set()
        await asyncio.gather(*(self._lane(dlq, lane, done) for lane in lanes.values()))
        offsets = {}
        for partition, records in batches.items():
            committable = records[0].offset
            for record in records:
                if (record.partition, record.offset) not in done:
                    break
                committable = record.offset + 1
            if committable > records[0].offset:
                offsets[partition] = committable
        if offsets:
            await consumer.commit(offsets)

    async def _lane(
        self,
        dlq: AIOKafkaProducer,
        lane: list[tuple[Record, ContactEvent | SchemaError]],
        done: set[tuple[int, int]],
    ) -> None:
        for record, event in lane:
            if not await self._handle(dlq, record, event):
                return  # stopping mid-retry: leave the offset uncommitted for the next owner
            done.add((record.partition, record.offset))

    async def _handle(
        self, dlq: AIOKafkaProducer, record: Record, event: ContactEvent | SchemaError
    ) -> bool:
        """Give the record an outcome; False only when asked to stop before it had one."""
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        with structlog.contextvars.bound_contextvars(record=origin):
            if isinstance(event, SchemaError):
                await self._dead_letter(dlq, record.value, record.key, origin, f"schema: {event}")
                return True
            applier = self._appliers.for_tenant(event.tenant)
            if applier is None:
                error = f"unknown tenant {event.tenant!r}"
                await self._dead_letter(dlq, record.value, record.key, origin, error)
                await self._record(event, origin, "dead_lettered", 1, Attempts(), 0.0, error)
                return True
            if self._parking is not None:
                waiting = applier.target.health.reason
                if waiting is not None:
                    waiting = f"SCIM target quarantined: {waiting}"
                elif await self._parking.is_waiting(event.tenant, _key(event)):
                    waiting = "behind an earlier parked event of the same entity"
                if waiting is not None:
                    await self._park(record.value, event, origin, "parked", waiting, Attempts())
                    return True
            return await self._apply(dlq, record, event, applier, origin)

    async def _apply(
        self,
        dlq: AIOKafkaProducer,
        record: Record,
        event: ContactEvent,
        applier: TenantApplier,
        origin: str,
    ) -> bool:
        attempts, runs, delay = Attempts(), 0, 0.5
        started = time.perf_counter()
        while not self._stopping.is_set():
            runs += 1
            try:
                with recording(attempts):
                    ops = await applier.apply(event)
            except RetryLater as exc:
                parkable = self._parking is not None
                if parkable and (
                    isinstance(exc, TargetQuarantined)
                    or runs > self._settings.retries_before_parking
                ):
                    await self._park(record.value, event, origin, "parked", str(exc), attempts)
                    return True
                wait = min(exc.retry_after or delay, _MAX_BACKOFF)
                attempts.notes.append(f"{exc}; event retried in {wait:.1f} s")
                log.warning("apply_retry", event_id=event.event_id, error=str(exc), wait=wait)
                await self._sleep(wait)
                delay = min(delay * 2, _MAX_BACKOFF)
            except Held as exc:
                if self._parking is None:
                    raise AssertionError("the deletion guard needs the store") from exc
                await self._park(record.value, event, origin, "held", str(exc), attempts)
                return True
            except DeadLetter as exc:
                await self._dead_letter(dlq, record.value, record.key, origin, str(exc))
                elapsed = time.perf_counter() - started
                await self._record(
                    event, origin, "dead_lettered", runs, attempts, elapsed, str(exc)
                )
                return True
            else:
                elapsed = time.perf_counter() - started
                outcome: Outcome = "applied" if ops.writes else "skipped"
                detail = None if ops.writes else ops.skip_reason
                log.info(
                    "applied",
                    event_id=event.event_id,
                    tenant=event.tenant,
                    entity=event.entity,
                    entity_id=event.entity_id,
                    change=event.change,
                    writes=ops.writes,
                    retries=attempts.retries,
                )
                await self._record(
                    event, origin, outcome, runs, attempts, elapsed, detail, ops.writes
                )
                return True
        return False

    # ---- parked events -------------------------------------------------------------------

    async def _park(
        self,
        value: bytes,
        event: ContactEvent,
        origin: str,
        state: Literal["parked", "held"],
        reason: str,
        attempts: Attempts,
    ) -> None:
        assert self._parking is not None
        now = time.time()
        await self._parking.park(
            event.tenant,
            _key(event),
            value,
            origin,
            state,
            reason,
            now,
            now + self._settings.redrive_interval_seconds,
        )
        log.warning(state, event_id=event.event_id, entity_id=event.entity_id, reason=reason)
        await self._record(event, origin, state, 1, attempts, 0.0, reason)

    async def _redrive_forever(self, dlq: AIOKafkaProducer) -> None:
        """Probe quarantined targets and re-drive parked events, every re-drive interval."""
        if self._parking is None:
            return
        last_probe = 0.0
        while True:
            await asyncio.sleep(self._settings.redrive_interval_seconds)
            try:
                if time.monotonic() - last_probe >= self._settings.quarantine_probe_seconds:
                    last_probe = time.monotonic()
                    for target in self._appliers.targets():
                        if target.health.quarantined:
                            await target.probe()
                await self.redrive(dlq)
            except Exception as exc:  # noqa: BLE001 - one bad round must not end the loop
                log.error("redrive_failed", error=f"{type(exc).__name__}: {exc}")

    async def _measure_lag_forever(self) -> None:
        """The group's lag for /metrics, measured as `orgstream lag` does, every poll interval."""
        kafka = self._kafka
        while True:
            try:
                lag = await measure_lag(kafka.bootstrap_servers, kafka.topic, kafka.consumer_group)
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the worker
                log.warning("lag_measure_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                metrics.export_lag(kafka.cluster_name, lag)
            await asyncio.sleep(self._settings.lag_poll_seconds)

    async def redrive(self, dlq: AIOKafkaProducer) -> None:
        """One round: each entity's parked events, oldest first, until one still cannot be
        applied (not due yet, held, or failing again)."""
        assert self._parking is not None
        by_entity: dict[tuple[str, str], list[ParkedEvent]] = defaultdict(list)
        states: Counter[str] = Counter()
        for parked in await self._parking.listed():
            by_entity[(parked.tenant, parked.entity_key)].append(parked)
            states[parked.state] += 1
        for state in ("parked", "held", "released"):
            metrics.PARKED_EVENTS.labels(state).set(states[state])
        for (tenant, _), queue in by_entity.items():
            applier = self._appliers.for_tenant(tenant)
            if applier is not None and applier.target.health.quarantined:
                continue
            for parked in queue:
                if not await self._redrive_one(dlq, parked, applier):
                    break

    async def _redrive_one(
        self, dlq: AIOKafkaProducer, parked: ParkedEvent, applier: TenantApplier | None
    ) -> bool:
        """True when the parked event got its final outcome (and left the parking lot)."""
        assert self._parking is not None
        now = time.time()
        if parked.state == "held" or parked.next_attempt > now:
            return False
        if not await self._parking.claim(parked, now + _CLAIM_SECONDS):
            return False  # another worker process is on it
        key = f"{parked.tenant}:{parked.entity_key}".encode()
        try:
            event = decode(parked.event)
        except SchemaError as exc:  # parked events were decoded once: only if the schema moved
            await self._dead_letter(dlq, parked.event, key, parked.origin, f"schema: {exc}")
            await self._parking.remove(parked.id)
            return True
        if applier is None:
            error = f"unknown tenant {parked.tenant!r}"
            await self._dead_letter(dlq, parked.event, key, parked.origin, error)
            await self._parking.remove(parked.id)
            await self._record(event, parked.origin, "dead_lettered", 1, Attempts(), 0.0, error)
            return True
        attempts = Attempts()
        waited = f"{parked.state} since {parked.parked_at} ({parked.reason}); re-driven"
        attempts.notes.append(waited)
        started = time.perf_counter()
        try:
            with recording(attempts):
                ops = await applier.apply(event, deletions_approved=parked.state == "released")
        except Held as exc:
            await self._parking.hold(parked.id, str(exc))
            await self._record(event, parked.origin, "held", 1, attempts, 0.0, str(exc))
            return False
        except RetryLater as exc:
            backoff = self._settings.redrive_interval_seconds * 2 ** (parked.attempts + 1)
            await self._parking.retry_later(
                parked.id, now + min(backoff, _MAX_PARKED_BACKOFF), str(exc)
            )
            return False
        except DeadLetter as exc:
            await self._dead_letter(dlq, parked.event, key, parked.origin, str(exc))
            await self._parking.remove(parked.id)
            elapsed = time.perf_counter() - started
            await self._record(
                event, parked.origin, "dead_lettered", 1, attempts, elapsed, str(exc)
            )
            return True
        await self._parking.remove(parked.id)
        outcome: Outcome = "applied" if ops.writes else "skipped"
        elapsed = time.perf_counter() - started
        log.info("redriven", event_id=event.event_id, outcome=outcome, writes=ops.writes)
        detail = None if ops.writes else ops.skip_reason
        await self._record(
            event,
            parked.origin,
            outcome,
            1 + parked.attempts,
            attempts,
            elapsed,
            detail,
            ops.writes,
        )
        return True

    async def _record(
        self,
        event: ContactEvent,
        origin: str,
        outcome: Outcome,
        runs: int,
        attempts: Attempts,
        seconds: float,
        error: str | None = None,
        operations: list[str] | None = None,
    ) -> None:
        metrics.EVENTS.labels(event.tenant, outcome).inc()
        if outcome in ("applied", "skipped"):
            metrics.APPLY_SECONDS.labels(event.tenant).observe(seconds)
            freshness = _seconds_since(event.occurred_at)
            if freshness is not None:
                metrics.FRESHNESS_SECONDS.labels(event.tenant).observe(freshness)
        if self._history is None:
            return
        entry = HistoryEntry.of(
            event, outcome, origin, runs, seconds, attempts.notes, operations or [], error
        )
        try:
            await self._history.record(entry)
        except Exception as exc:  # noqa: BLE001 - the history must never stop the sync itself
            log.error("history_write_failed", error=f"{type(exc).__name__}: {exc}")

    async def _dead_letter(
        self, dlq: AIOKafkaProducer, value: bytes, key: bytes | None, origin: str, error: str
    ) -> None:
        headers = [(HEADER_ERROR, error.encode()), (HEADER_ORIGIN, origin.encode())]
        await dlq.send_and_wait(self._kafka.dlq_topic, value, key=key, headers=headers)
        log.error("dead_lettered", error=error)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _key(event: ContactEvent) -> str:
    return entity_key(event.entity, event.entity_id)


def _seconds_since(moment: str) -> float | None:
    try:
        return max(0.0, time.time() - datetime.fromisoformat(moment).timestamp())
    except ValueError:
        return None
