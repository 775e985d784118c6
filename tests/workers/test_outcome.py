"""The one outcome dispatcher: what applying came to, as data, and what each outcome does to
the dead-letter topic, the parking lot and the sync history."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from schemas.config import KafkaSettings
from schemas.event import ContactEvent, encode, utc_iso
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN
from workers.apply.applier import TenantApplier
from workers.apply.writes import AppliedOps
from workers.attempts import Attempts
from workers.consume.outcome import (
    Attempt,
    Delivery,
    OutcomeDispatcher,
    Settled,
    apply_once,
    apply_with_retries,
)
from workers.errors import (
    DependencyMissing,
    Held,
    ScimRejected,
    TargetQuarantined,
    VendorRejected,
)
from workers.store.history import HistoryEntry
from workers.store.parking import ParkingLot, open_parking

KAFKA = KafkaSettings(bootstrap_servers="unused:9092", dlq_topic="events.dlq")


def an_event(userid: str = "zhangsan") -> ContactEvent:
    now = utc_iso(time.time())
    return ContactEvent(
        event_id=f"e-{userid}",
        tenant="acme",
        vendor="wecom",
        entity="user",
        entity_id=userid,
        change="updated",
        occurred_at=now,
        received_at=now,
        raw="",
        attributes={},
    )


class ScriptedApplier:
    """Raises, then succeeds, as scripted: one entry per apply."""

    def __init__(self, *script: Exception | AppliedOps) -> None:
        self._script = list(script)
        self.calls = 0

    async def apply(self, event: ContactEvent, deletions_approved: bool = False) -> AppliedOps:
        self.calls += 1
        step = self._script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def applier(*script: Exception | AppliedOps) -> TenantApplier:
    return cast(TenantApplier, ScriptedApplier(*script))


@pytest.mark.parametrize(
    ("raised", "result", "outcome"),
    [
        (DependencyMissing("department 7 not yet"), "transient", "parked"),
        (TargetQuarantined("401"), "quarantined", "parked"),
        (Held("deletion guard: too many"), "held", "held"),
        (ScimRejected(400, "invalidValue", "bad"), "rejected", "dead_lettered"),
        (VendorRejected(60011, "no privilege"), "rejected", "dead_lettered"),
    ],
)
async def test_every_failure_the_applier_signals_becomes_data(
    raised: Exception, result: str, outcome: str
) -> None:
    attempt = await apply_once(applier(raised), an_event(), Attempts())
    assert (attempt.result, attempt.outcome, attempt.detail) == (result, outcome, str(raised))


async def test_writes_make_applied_and_none_make_skipped_with_the_reason() -> None:
    wrote = AppliedOps(writes=["POST /Users acme"])
    assert (await apply_once(applier(wrote), an_event(), Attempts())).outcome == "applied"
    quiet = AppliedOps(skip_reason="the target already matches the source")
    skipped = await apply_once(applier(quiet), an_event(), Attempts())
    assert (skipped.outcome, skipped.detail) == ("skipped", quiet.skip_reason)


async def no_wait(seconds: float) -> bool:
    return True


async def test_a_brief_failure_is_retried_in_place_then_parked() -> None:
    flaky = ScriptedApplier(*(DependencyMissing("not yet") for _ in range(4)))
    attempts = Attempts()
    tried = await apply_with_retries(cast(TenantApplier, flaky), an_event(), attempts, 3, no_wait)
    assert tried is not None
    attempt, runs = tried
    assert (attempt.outcome, runs, flaky.calls, attempts.retries) == ("parked", 4, 4, 3)


async def test_a_quarantined_target_is_parked_at_once_and_retried_without_a_store() -> None:
    parked = await apply_with_retries(
        applier(TargetQuarantined("401")), an_event(), Attempts(), 3, no_wait
    )
    assert parked is not None
    assert (parked[0].outcome, parked[1]) == ("parked", 1)
    nowhere_to_park = ScriptedApplier(TargetQuarantined("401"), AppliedOps(writes=["PATCH x"]))
    tried = await apply_with_retries(
        cast(TenantApplier, nowhere_to_park), an_event(), Attempts(), None, no_wait
    )
    assert tried is not None
    assert (tried[0].outcome, tried[1]) == ("applied", 2)


async def test_stopping_during_a_retry_leaves_the_event_without_an_outcome() -> None:
    async def stopping(seconds: float) -> bool:
        return False

    tried = await apply_with_retries(
        applier(DependencyMissing("not yet")), an_event(), Attempts(), 3, stopping
    )
    assert tried is None


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self.entries: list[HistoryEntry] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        self.sent.append((topic, value, key, headers))

    async def record(self, entry: HistoryEntry) -> None:
        self.entries.append(entry)


@pytest.fixture
async def lot(tmp_path: Path) -> AsyncIterator[ParkingLot]:
    store = open_parking(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    await store.aclose()


def dispatcher(recorder: Recorder, lot: ParkingLot) -> OutcomeDispatcher:
    return OutcomeDispatcher(KAFKA, recorder, recorder, lot, redrive_interval_seconds=5.0)


def delivered(event: ContactEvent) -> Delivery:
    return Delivery(encode(event), event.key, "events/0/7")


async def test_a_dead_letter_goes_to_the_dlq_with_its_error_and_into_the_history(
    lot: ParkingLot,
) -> None:
    recorder, event = Recorder(), an_event()
    await dispatcher(recorder, lot).settle(
        delivered(event), event, Settled("dead_lettered", "SCIM 400 invalidValue: bad")
    )
    [(topic, value, key, headers)] = recorder.sent
    assert (topic, value, key) == ("events.dlq", encode(event), event.key)
    assert dict(headers) == {
        HEADER_ERROR: b"SCIM 400 invalidValue: bad",
        HEADER_ORIGIN: b"events/0/7",
    }
    [entry] = recorder.entries
    assert (entry.outcome, entry.error, entry.origin) == (
        "dead_lettered",
        "SCIM 400 invalidValue: bad",
        "events/0/7",
    )


async def test_an_unreadable_record_is_dead_lettered_without_a_history_row(
    lot: ParkingLot,
) -> None:
    recorder = Recorder()
    delivery = Delivery(b"not json", b"acme:user:x", "events/1/2")
    await dispatcher(recorder, lot).settle(delivery, None, Settled("dead_lettered", "schema: x"))
    assert [sent[1] for sent in recorder.sent] == [b"not json"]
    assert recorder.entries == []


@pytest.mark.parametrize("state", ["parked", "held"])
async def test_parked_and_held_events_wait_in_the_store(lot: ParkingLot, state: Any) -> None:
    recorder, event = Recorder(), an_event()
    await dispatcher(recorder, lot).settle(delivered(event), event, Settled(state, "why"))
    [parked] = await lot.listed()
    assert (parked.entity_key, parked.state, parked.reason) == ("user:zhangsan", state, "why")
    assert [e.outcome for e in recorder.entries] == [state]
    assert recorder.sent == []


async def test_a_redriven_event_leaves_the_lot_once_applied_and_stays_while_failing(
    lot: ParkingLot,
) -> None:
    recorder, event = Recorder(), an_event()
    outcomes = dispatcher(recorder, lot)
    await outcomes.settle(delivered(event), event, Settled("parked", "503"))
    [parked] = await lot.listed()
    redriven = Delivery(parked.event, event.key, parked.origin, parked)
    await outcomes.settle(redriven, event, Settled("parked", "503 again"))
    [still] = await lot.listed()
    assert (still.attempts, still.reason) == (1, "503 again")
    assert [e.outcome for e in recorder.entries] == ["parked"]  # a retry is no new outcome
    await outcomes.settle(redriven, event, Settled("applied", writes=("PATCH /Users/1 title",)))
    assert await lot.listed() == []
    assert [e.outcome for e in recorder.entries] == ["parked", "applied"]


def test_the_outcome_of_each_result() -> None:
    assert [Attempt(r).outcome for r in ("transient", "quarantined", "held", "rejected")] == [
        "parked",
        "parked",
        "held",
        "dead_lettered",
    ]
