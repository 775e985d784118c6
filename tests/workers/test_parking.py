"""Parked events and the deletion guard's ledger, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.config import GuardSettings
from tests.stores import store_url
from workers.apply.guard import DeletionGuard
from workers.errors import Held
from workers.store.ledger import DeletionLedger, open_ledger
from workers.store.parking import ParkingLot, open_parking


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with store_url(request.param, tmp_path) as chosen:
        yield chosen


@pytest.fixture
async def lot(url: str) -> AsyncIterator[ParkingLot]:
    store = open_parking(url)
    yield store
    await store.aclose()


@pytest.fixture
async def ledger(url: str) -> AsyncIterator[DeletionLedger]:
    store = open_ledger(url)
    yield store
    await store.aclose()


async def park(lot: ParkingLot, key: str, body: str, state: str = "parked") -> None:
    await lot.park("acme", key, body.encode(), "t/0/1", state, "why", 1000.0, 1005.0)  # type: ignore[arg-type]


async def test_parked_events_come_back_oldest_first_with_what_they_carried(
    lot: ParkingLot,
) -> None:
    await park(lot, "user:a", '{"n": 1}')
    await park(lot, "user:b", '{"n": 2}')
    await park(lot, "user:a", '{"n": "三"}')
    listed = await lot.listed()
    assert [(p.entity_key, p.event) for p in listed] == [
        ("user:a", b'{"n": 1}'),
        ("user:b", b'{"n": 2}'),
        ("user:a", '{"n": "三"}'.encode()),
    ]
    assert listed[0].parked_at.startswith("1970-01-01T00:16:40")
    assert await lot.is_waiting("acme", "user:a")
    assert not await lot.is_waiting("acme", "user:c")
    assert not await lot.is_waiting("other", "user:a")


async def test_only_one_claimant_wins_a_parked_event(lot: ParkingLot) -> None:
    await park(lot, "user:a", "{}")
    (parked,) = await lot.listed()
    assert await lot.claim(parked, 2000.0)
    assert not await lot.claim(parked, 2000.0)  # a second process holding the old copy


async def test_retry_later_counts_attempts_and_remove_empties_the_lot(lot: ParkingLot) -> None:
    await park(lot, "user:a", "{}")
    (parked,) = await lot.listed()
    await lot.retry_later(parked.id, 3000.0, "still 503")
    (again,) = await lot.listed()
    assert (again.attempts, again.next_attempt, again.reason) == (1, 3000.0, "still 503")
    await lot.remove(parked.id)
    assert await lot.listed() == []


async def test_approval_releases_held_events_and_restarts_the_window(
    lot: ParkingLot, ledger: DeletionLedger
) -> None:
    for at in (100.0, 200.0, 300.0):
        await ledger.record_deletion("acme", "user", at)
    await ledger.record_deletion("acme", "department", 300.0)
    await ledger.record_deletion("beta", "user", 300.0)
    assert await ledger.deletions_since("acme", "user", 150.0) == 2
    assert await ledger.deletions_since("acme", "department", 150.0) == 1
    await park(lot, "user:a", "{}", "held")
    await park(lot, "user:b", "{}")
    assert await lot.count_held("acme") == 1
    await ledger.approve("acme", now=250.0)
    assert await lot.release_held("acme") == 1
    assert await lot.count_held("acme") == 0
    assert [p.state for p in await lot.listed()] == ["released", "parked"]
    assert await ledger.deletions_since("acme", "user", 0.0) == 1  # only the one after approval


class Clock:
    now = 10_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_guard_holds_deletions_past_the_count_until_approved(
    lot: ParkingLot, ledger: DeletionLedger
) -> None:
    clock = Clock()
    guard = DeletionGuard(GuardSettings(max_deletions=3, window_minutes=10), ledger, lot, clock)

    async def users() -> int:
        return 1000

    for _ in range(3):
        await guard.admit("acme", "user", "user x", users)
        await guard.record("acme", "user")
    with pytest.raises(Held, match="user deletion 4 of acme"):
        await guard.admit("acme", "user", "user y", users)
    await guard.admit("beta", "user", "user z", users)  # another tenant is not affected
    clock.now += 601  # the window slides past the first three
    await guard.admit("acme", "user", "user y", users)


async def test_the_guard_holds_a_share_of_the_users_and_everything_after(
    lot: ParkingLot, ledger: DeletionLedger
) -> None:
    clock = Clock()
    guard = DeletionGuard(
        GuardSettings(max_deletions=100, max_deletion_percent=20), ledger, lot, clock
    )

    async def users() -> int:
        return 20

    for _ in range(4):  # 4 of 20 = 20 %: still allowed
        await guard.admit("acme", "user", "user x", users)
        await guard.record("acme", "user")
    with pytest.raises(Held, match="25 %"):
        await guard.admit("acme", "user", "user y", users)
    await park(lot, "user:y", "{}", "held")
    clock.now += 7200  # even after the window: held until an operator approves
    with pytest.raises(Held, match="held for approval"):
        await guard.admit("acme", "user", "user w", users)
    await ledger.approve("acme", clock.now)
    await lot.release_held("acme")
    await guard.admit("acme", "user", "user w", users)


async def test_a_disabled_guard_admits_everything(lot: ParkingLot, ledger: DeletionLedger) -> None:
    guard = DeletionGuard(GuardSettings(enabled=False, max_deletions=1), ledger, lot)

    async def users() -> int:
        return 1

    for _ in range(5):
        await guard.admit("acme", "user", "user x", users)
        await guard.record("acme", "user")
    assert await ledger.deletions_since("acme", "user", 0.0) == 0


async def test_departments_are_counted_apart_from_users(
    lot: ParkingLot, ledger: DeletionLedger
) -> None:
    guard = DeletionGuard(GuardSettings(max_deletions=2), ledger, lot)

    async def many() -> int:
        return 1000

    for kind in ("user", "user", "department", "department"):
        await guard.admit("acme", kind, "x", many)
        await guard.record("acme", kind)
    with pytest.raises(Held, match="department deletion 3"):
        await guard.admit("acme", "department", "x", many)
