"""One pace per SCIM target across worker processes (workers/scim/pace.py), meeting in the
store (workers/store/pace_board.py). No timings are measured: the clock is the test's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stores import store_url
from workers.scim.pace import TargetPace
from workers.store.database import open_database
from workers.store.pace_board import PACE_SCHEMA, PaceBoard

TARGET = "https://scim.example/v2"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_three_processes_share_the_budget_and_one_429_pauses_them_all(
    kind: str, tmp_path: Path
) -> None:
    async with store_url(kind, tmp_path) as url:
        boards = [PaceBoard(open_database(url, PACE_SCHEMA), f"worker-{n}") for n in range(3)]
        clock = Clock()
        paces = [TargetPace(TARGET, 30.0, board, clock) for board in boards]
        try:
            for pace in paces:  # each says it is alive with its first request
                await pace.wait()
            clock.now += 10  # their next look at the board
            await paces[0].wait()
            assert paces[0].per_second == pytest.approx(10.0)  # a third of 30 each
            assert paces[0].delay() == pytest.approx(0.1)  # its next slot

            await paces[2].throttled(8.0)  # the target told worker 2: 429, Retry-After 8
            clock.now += 5.0  # worker 1's next look at the board (its last was at the start)
            await paces[1].refresh()
            assert paces[1].delay() == pytest.approx(3.0)  # it holds off the rest of the pause
        finally:
            for board in boards:
                await board.aclose()


async def test_without_a_budget_only_a_429_holds_requests_back() -> None:
    clock = Clock()
    pace = TargetPace(TARGET, 0.0, None, clock)
    await pace.wait()
    assert pace.delay() == 0.0
    await pace.throttled(2.5)
    assert pace.delay() == pytest.approx(2.5)


async def test_a_worker_gone_quiet_gives_its_share_back(tmp_path: Path) -> None:
    async with store_url("sqlite", tmp_path) as url:
        early, late = (PaceBoard(open_database(url, PACE_SCHEMA), w) for w in ("a", "b"))
        try:
            assert await early.workers_alive(1_000.0) == 1
            assert await late.workers_alive(1_001.0) == 2
            assert await late.workers_alive(1_100.0) == 1  # "a" not heard from since
        finally:
            await early.aclose()
            await late.aclose()
