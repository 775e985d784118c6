"""Where the worker processes meet to share a SCIM target's pace: who is alive (a heartbeat
each), and until when each target asked everyone to hold off (its last 429's Retry-After)."""

from __future__ import annotations

import os
import uuid
from typing import Final

from workers.store.database import Database, open_database

PACE_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS worker_heartbeats (
    worker TEXT PRIMARY KEY,
    seen_at DOUBLE PRECISION NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS scim_target_pauses (
    target TEXT PRIMARY KEY,
    until DOUBLE PRECISION NOT NULL
)""",
)
ALIVE_SECONDS: Final = 30.0  # a worker not heard from for this long no longer takes a share
THIS_PROCESS: Final = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PaceBoard:
    def __init__(self, db: Database, worker: str = THIS_PROCESS) -> None:
        self._db = db
        self._worker = worker

    async def aclose(self) -> None:
        await self._db.aclose()

    async def workers_alive(self, now: float) -> int:
        """Say this process is alive; how many are (itself included)."""
        await self._db.execute(
            """INSERT INTO worker_heartbeats (worker, seen_at) VALUES (?, ?)
            ON CONFLICT (worker) DO UPDATE SET seen_at = excluded.seen_at""",
            [self._worker, now],
        )
        alive = await self._db.fetch(
            "SELECT count(*) FROM worker_heartbeats WHERE seen_at >= ?", [now - ALIVE_SECONDS]
        )
        return max(1, int(alive[0][0]))

    async def paused_until(self, target: str) -> float:
        rows = await self._db.fetch(
            "SELECT until FROM scim_target_pauses WHERE target = ?", [target]
        )
        return float(rows[0][0]) if rows else 0.0

    async def pause(self, target: str, until: float) -> None:
        await self._db.execute(
            """INSERT INTO scim_target_pauses (target, until) VALUES (?, ?)
            ON CONFLICT (target) DO UPDATE SET until = excluded.until
            WHERE scim_target_pauses.until < excluded.until""",
            [target, until],
        )


def open_pace_board(url: str) -> PaceBoard:
    return PaceBoard(open_database(url, PACE_SCHEMA))
