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

    async def mark(self, chosen: Sequence[tuple[str, str]], who: str) -> None:
        """Each (dead-letter topic, position) as re-driven now by `who`."""
        now = utc_iso(time.time())
        for topic, position in chosen:
            await self._db.execute(
                "INSERT INTO dead_letters_redriven (topic, position, at, who) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (topic, position) DO UPDATE SET at = excluded.at, who = excluded.who",
                [topic, position, now, who],
            )

    async def marks(self) -> dict[tuple[str, str], Redriven]:
        """Every re-drive, by (dead-letter topic, position)."""
        rows = await self._db.fetch("SELECT topic, position, at, who FROM dead_letters_redriven")
        return {(str(r[0]), str(r[1])): Redriven(str(r[2]), str(r[3])) for r in rows}

    async def aclose(self) -> None:
        await self._db.aclose()


def open_redriven(url: str) -> RedrivenLog:
    return RedrivenLog(open_database(url, REDRIVEN_SCHEMA))
