"""One pace per SCIM target across every worker process: at most the target's
`max_requests_per_second`, shared among the workers alive, and no request at all while a 429's
`Retry-After` runs, whichever process was told (docs/scim-targets.md §7, rule 5).

The processes meet on a board in the store (workers/store/pace_board.py). A process reads it
at most every `REFRESH_SECONDS`, so a request never waits on the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final, Protocol

REFRESH_SECONDS: Final = 5.0


class Board(Protocol):
    async def workers_alive(self, now: float) -> int: ...

    async def paused_until(self, target: str) -> float: ...

    async def pause(self, target: str, until: float) -> None: ...


class TargetPace:
    def __init__(
        self,
        target: str,
        max_per_second: float = 0.0,
        board: Board | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`max_per_second`: the target's whole budget (0: no limit); `board`: where the
        processes meet (None: this process alone)."""
        self._target = target
        self._budget = max_per_second
        self._board = board
        self._clock = clock
        self._workers = 1
        self._paused_until = 0.0
        self._next_slot = 0.0
        self._refreshed = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def per_second(self) -> float:
        """This process's share of the budget (0: unlimited)."""
        return self._budget / self._workers if self._budget > 0 else 0.0

    def delay(self) -> float:
        """How long the next request would wait now (without taking its turn)."""
        now = self._clock()
        start = max(now, self._paused_until)
        if self.per_second > 0:
            start = max(start, self._next_slot)
        return start - now

    async def wait(self) -> None:
        """Until this process may send its next request to the target."""
        async with self._lock:
            await self.refresh()
            wait = self.delay()
            if self.per_second > 0:
                self._next_slot = self._clock() + wait + 1.0 / self.per_second
            if wait > 0:
                await asyncio.sleep(wait)

    async def throttled(self, seconds: float) -> None:
        """The target said 429: nobody sends to it for `seconds`."""
        until = self._clock() + seconds
        self._paused_until = max(self._paused_until, until)
        if self._board is not None:
            await self._board.pause(self._target, until)

    async def refresh(self) -> None:
        """Look at the board, if the last look is `REFRESH_SECONDS` old."""
        now = self._clock()
        if self._board is None or now - self._refreshed < REFRESH_SECONDS:
            return
        self._refreshed = now
        self._workers = await self._board.workers_alive(now)
        self._paused_until = max(self._paused_until, await self._board.paused_until(self._target))
