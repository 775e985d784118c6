"""Parked events applied again: each entity's events in order, once the target is back, the
dependency has arrived, or the deletions were approved. Several worker processes may re-drive
side by side: each event is claimed in the store first."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Final

import structlog

from schemas.config import WorkerSettings
from schemas.event import ContactEvent, SchemaError, decode
from schemas.topics import entity_key, tenant_entity_key
from workers import metrics
from workers.apply.applier import TenantApplier
from workers.apply.appliers import Appliers
from workers.attempts import Attempts
from workers.concurrency import gather_bounded
from workers.consume.outcome import (
    Delivery,
    Handoff,
    OutcomeDispatcher,
    Settled,
    VersionGate,
    apply_once,
)
from workers.store.parking import ParkedEvent, ParkingLot

_CLAIM_SECONDS: Final = 60.0  # a re-drive that takes longer than this may be repeated: harmless
log = structlog.get_logger("orgstream.worker")


class Redriver:
    def __init__(
        self,
        appliers: Appliers,
        dispatcher: OutcomeDispatcher,
        settings: WorkerSettings,
        decode: Callable[[bytes], ContactEvent] = decode,
        versions: VersionGate | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        self._decode = decode
        self._versions = versions
        self._handoff = handoff
        self._appliers = appliers
        self._dispatcher = dispatcher
        self._settings = settings

    async def run_forever(self) -> None:
        """Probe quarantined targets and re-drive parked events, every re-drive interval."""
        if self._dispatcher.parking is None:
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
                await self.redrive()
            except Exception as exc:  # noqa: BLE001 - one bad round must not end the loop
                log.error("redrive_failed", error=f"{type(exc).__name__}: {exc}")

    async def redrive(self) -> None:
        """One round: each entity's parked events, oldest first, until one still cannot be
        applied (not due yet, held, or failing again); up to `worker.apply_concurrency`
        entities at a time."""
        parking = self._parking()
        listed = await parking.listed()
        states = Counter(parked.state for parked in listed)
        for state in ("parked", "held", "released"):
            metrics.PARKED_EVENTS.labels(state).set(states[state])

        async def entity(queue: list[ParkedEvent]) -> None:
            applier = self._appliers.for_tenant(queue[0].tenant)
            if applier is not None and applier.target.health.quarantined:
                return
            try:
                for parked in queue:
                    if not await self._redrive_one(parked, applier):
                        break
            except Exception as exc:  # noqa: BLE001 - the others go on; this one next round
                error = f"{type(exc).__name__}: {exc}"
                log.error("redrive_failed", entity=queue[0].entity_key, error=error)

        # Entities side by side, as the loop applies them; each entity's events in order.
        queues = list(self._queues(listed).values())
        await gather_bounded(queues, entity, self._settings.apply_concurrency)

    def _queues(self, listed: list[ParkedEvent]) -> dict[tuple[str, str], list[ParkedEvent]]:
        """One queue per entity, in parking order; a userid change shares its queue with the
        new id's events, as in the loop (`loop._lane`)."""
        alias: dict[tuple[str, str], tuple[str, str]] = {}
        for parked in listed:
            new_key = self._renamed_to(parked)
            if new_key is not None:
                old = (parked.tenant, parked.entity_key)
                alias[(parked.tenant, new_key)] = alias.get(old, old)
        queues: dict[tuple[str, str], list[ParkedEvent]] = defaultdict(list)
        for parked in listed:
            key = (parked.tenant, parked.entity_key)
            queues[alias.get(key, key)].append(parked)
        return queues

    def _renamed_to(self, parked: ParkedEvent) -> str | None:
        """The new id's entity key, for a parked userid change."""
        try:
            event = self._decode(parked.event)
        except SchemaError:
            return None
        new_userid = event.attributes.get("new_userid")
        if event.change == "renamed" and isinstance(new_userid, str):
            return entity_key("user", new_userid)
        return None

    async def _redrive_one(self, parked: ParkedEvent, applier: TenantApplier | None) -> bool:
        """True when the parked event got its final outcome (and left the parking lot)."""
        now = time.time()
        if parked.state == "held" or parked.next_attempt > now:
            return False
        if not await self._parking().claim(parked, now + _CLAIM_SECONDS):
            return False  # another worker process is on it
        key = tenant_entity_key(parked.tenant, parked.entity_key)
        delivery = Delivery(parked.event, key, parked.origin, parked)
        settle = self._dispatcher.settle
        gate = self._versions  # none for a hint of the other path
        try:
            event = self._decode(parked.event)
        except SchemaError as exc:  # parked events were decoded once: only if the schema moved
            other = self._other_path(parked.event)
            if other is None:
                await settle(delivery, None, Settled("dead_lettered", f"schema: {exc}"))
                return True
            if parked.state != "released":  # parked on the other path: that stage takes it
                assert self._handoff is not None
                await self._handoff.hand_over(other)
                reason = "parked before the feed was switched on: handed to the resolver"
                await settle(delivery, other, Settled("skipped", reason))
                return True
            event, gate = other, None  # an approved deletion: applied here, so approved
        if applier is None:
            error = f"unknown tenant {parked.tenant!r}"
            await settle(delivery, event, Settled("dead_lettered", error))
            return True
        stale = None if gate is None else await gate.superseded(parked.event)
        if stale is not None:
            await settle(delivery, event, Settled("skipped", stale))
            return True
        attempts = Attempts()
        attempts.notes.append(
            f"{parked.state} since {parked.parked_at} ({parked.reason}); re-driven"
        )
        started = time.perf_counter()
        approved = parked.state == "released"
        attempt = await apply_once(applier, event, attempts, deletions_approved=approved)
        elapsed = time.perf_counter() - started
        outcome = attempt.outcome
        runs = 1
        if outcome in ("applied", "skipped"):
            log.info("redriven", event_id=event.event_id, outcome=outcome, writes=attempt.writes)
            runs = 1 + parked.attempts
            if gate is not None:
                await gate.applied(parked.event)
        await settle(delivery, event, Settled.of(attempt, runs, elapsed), attempts)
        return outcome not in ("parked", "held")

    def _other_path(self, payload: bytes) -> ContactEvent | None:
        if self._handoff is None:
            return None
        try:
            return self._handoff.decode(payload)
        except SchemaError:
            return None

    def _parking(self) -> ParkingLot:
        parking = self._dispatcher.parking
        assert parking is not None  # re-driving runs only with a store
        return parking
