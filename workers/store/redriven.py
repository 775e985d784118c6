"""Which dead letters were put back, when and by whom. The dead-letter topic keeps every record
(it is a log); this is how the console and `orgstream dlq` tell what still waits for a person
from what was already re-driven."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from schemas.event import utc_iso
from workers.store.database import Database, open_database

REDRIVEN_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS dead_letters_redriven (
    topic TEXT NOT NULL,
    position TEXT NOT NULL,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    PRIMARY KEY (topic, position)
)""",
)


@dataclass(frozen=True)
class Redriven:
    at: str  # RFC 3339 UTC, the latest re-drive
    who: str


class RedrivenLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def mark(self, topic: str, positions: Sequence[str], who: str) -> None:
        now = utc_iso(time.time())
        for position in positions:
            await self._db.execute(
                "INSERT INTO dead_letters_redriven (topic, position, at, who) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (topic, position) DO UPDATE SET at = excluded.at, who = excluded.who",
                [topic, position, now, who],
            )

    async def marks(self, topic: str) -> dict[str, Redriven]:
        rows = await self._db.fetch(
            "SELECT position, at, who FROM dead_letters_redriven WHERE topic = ?", [topic]
        )
        return {str(r[0]): Redriven(str(r[1]), str(r[2])) for r in rows}

    async def aclose(self) -> None:
        await self._db.aclose()


def open_redriven(url: str) -> RedrivenLog:
    return RedrivenLog(open_database(url, REDRIVEN_SCHEMA))
