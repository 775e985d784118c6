"""Scripted trouble for a simulated vendor API, per path: an errcode from the n-th call on, and
a pause from the n-th call on that holds every later call until the test resumes it (to act
in the middle of a directory walk)."""

from __future__ import annotations

import asyncio
from collections import Counter


class ApiFaults:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._failing: dict[str, tuple[int, int]] = {}  # path -> (after this many calls, errcode)
        self._pausing: dict[str, int] = {}
        self._exempt: frozenset[str] = frozenset()
        self.paused = asyncio.Event()
        self.resumed = asyncio.Event()

    def fail_after(self, path: str, calls: int, errcode: int) -> None:
        self._failing[path] = (calls, errcode)

    def pause_after(self, path: str, calls: int, exempt: frozenset[str] = frozenset()) -> None:
        """Hold every call to `path` after the first `calls`, except those about `exempt`."""
        self._pausing[path] = calls
        self._exempt = exempt
        self.paused.clear()
        self.resumed.clear()

    def resume(self) -> None:
        self._pausing.clear()
        self.resumed.set()

    async def check(self, path: str, subject: str = "") -> int | None:
        """Count the call (about `subject`: a userid, a department id); wait while paused; the
        errcode to answer with, if any."""
        self.calls[path] += 1
        pausing = path in self._pausing and subject not in self._exempt
        if pausing and self.calls[path] > self._pausing[path]:
            self.paused.set()
            await self.resumed.wait()
        failing = self._failing.get(path)
        if failing is not None and self.calls[path] > failing[0]:
            return failing[1]
        return None
