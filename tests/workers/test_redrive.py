"""Re-driving parked events: entities side by side (bounded by `worker.apply_concurrency`, as
the loop applies them), each entity's parked events in the order they were parked."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from schemas.config import KafkaSettings, WorkerSettings
from schemas.event import ContactEvent, encode, utc_iso
from workers.apply.applier import AppliedOps
from workers.apply.appliers import Appliers
from workers.consume.outcome import OutcomeDispatcher
from workers.consume.redrive import Redriver
from workers.store.parking import ParkingLot, open_parking

LIMIT = 4


def update(userid: str, n: int) -> ContactEvent:
    now = utc_iso(time.time())
    return ContactEvent(
        event_id=f"{userid}-{n}", tenant="acme", vendor="wecom", entity="user",
        entity_id=userid, change="updated", occurred_at=now, received_at=now, raw="",
        attributes={"userid": userid},
    )  # fmt: skip


@dataclass
class Health:
    quarantined: bool = False


@dataclass
class Target:
    health: Health = field(default_factory=Health)


@dataclass
class SlowApplier:
    """Holds each apply until LIMIT are in flight (or a second passed): the most in flight at
    once shows whether the round runs entities side by side."""

    target: Target = field(default_factory=Target)
    in_flight: int = 0
    most: int = 0
    applied: list[str] = field(default_factory=list)
    crowd: asyncio.Event = field(default_factory=asyncio.Event)

    async def apply(self, event: ContactEvent, deletions_approved: bool = False) -> AppliedOps:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= LIMIT:
            self.crowd.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.crowd.wait(), 1.0)
        self.in_flight -= 1
        self.applied.append(event.event_id)
        return AppliedOps()


@dataclass
class OneTenant:
    applier: Any

    def for_tenant(self, tenant: str) -> Any:
        return self.applier

    def targets(self) -> list[Any]:
        return []


class NoDeadLetters:
    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Any) -> None:
        raise AssertionError("nothing here is dead-lettered")


@pytest.fixture
async def lot(tmp_path: Path) -> AsyncIterator[ParkingLot]:
    parking = open_parking(f"sqlite:///{tmp_path / 'state.db'}")
    yield parking
    await parking.aclose()


async def test_a_round_re_drives_entities_side_by_side_and_each_in_order(lot: ParkingLot) -> None:
    events = [update(f"u{i}", 1) for i in range(10)] + [update("u0", 2), update("u0", 3)]
    for event in events:
        await lot.park("acme", f"user:{event.entity_id}", encode(event), "test", "parked",
                       "target quarantined", time.time(), 0.0)  # fmt: skip
    applier = SlowApplier()
    dispatcher = OutcomeDispatcher(KafkaSettings(), NoDeadLetters(), None, lot, 0.5)
    settings = WorkerSettings(apply_concurrency=LIMIT)
    await Redriver(cast(Appliers, OneTenant(applier)), dispatcher, settings).redrive()

    assert applier.most == LIMIT  # side by side, and never more than allowed
    assert sorted(applier.applied) == sorted(e.event_id for e in events)
    mine = [event_id for event_id in applier.applied if event_id.startswith("u0-")]
    assert mine == ["u0-1", "u0-2", "u0-3"]  # one entity's events in the order parked
    assert await lot.listed() == []


@dataclass
class OrderingApplier:
    """Renames take a while; one entity's apply fails outright (a store error, say)."""

    target: Target = field(default_factory=Target)
    applied: list[str] = field(default_factory=list)

    async def apply(self, event: ContactEvent, deletions_approved: bool = False) -> AppliedOps:
        if event.entity_id == "broken":
            raise RuntimeError("the store went away")
        if event.change == "renamed":
            await asyncio.sleep(0.2)
        self.applied.append(event.event_id)
        return AppliedOps()


async def test_a_userid_change_and_the_new_ids_events_share_a_queue_and_one_failure_stays_put(
    lot: ParkingLot,
) -> None:
    renamed = dataclasses.replace(update("old", 1), change="renamed",
                                  attributes={"userid": "old", "new_userid": "new"})  # fmt: skip
    for event in (renamed, update("new", 2), update("broken", 1), update("other", 1)):
        await lot.park("acme", f"user:{event.entity_id}", encode(event), "test", "parked",
                       "target quarantined", time.time(), 0.0)  # fmt: skip
    applier = OrderingApplier()
    dispatcher = OutcomeDispatcher(KafkaSettings(), NoDeadLetters(), None, lot, 0.5)
    settings = WorkerSettings(apply_concurrency=LIMIT)
    await Redriver(cast(Appliers, OneTenant(applier)), dispatcher, settings).redrive()

    assert applier.applied.index("old-1") < applier.applied.index("new-2")  # as in the loop
    assert "other-1" in applier.applied  # the failing entity stopped nobody else
    assert [p.entity_key for p in await lot.listed()] == ["user:broken"]  # tried next round
