"""Replicas start together (deploy/ runs three): creating the store's tables must not race."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.stores import store_url
from workers.store.database import open_database
from workers.store.history import HISTORY_SCHEMA
from workers.store.ledger import LEDGER_SCHEMA
from workers.store.mirror import MIRROR_SCHEMA
from workers.store.parking import PARKING_SCHEMA
from workers.store.sync_runs import RUNS_SCHEMA

SCHEMAS = (HISTORY_SCHEMA, PARKING_SCHEMA, RUNS_SCHEMA, LEDGER_SCHEMA, MIRROR_SCHEMA)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_many_processes_may_create_the_store_at_the_same_instant(
    kind: str, tmp_path: Path
) -> None:
    async with store_url(kind, tmp_path) as url:

        async def first_use(index: int) -> None:
            # A connection of its own, as each worker process has; its first statement
            # creates the tables.
            db = open_database(url, SCHEMAS[index % len(SCHEMAS)])
            try:
                await db.fetch("SELECT 1")
            finally:
                await db.aclose()

        started = await asyncio.gather(*(first_use(i) for i in range(20)), return_exceptions=True)
        assert [type(s).__name__ for s in started if isinstance(s, BaseException)] == []
        db = open_database(url, ())
        try:  # and every store's tables are there
            for table in ("sync_history", "parked_events", "deletions", "mirror_entities"):
                await db.fetch(f"SELECT count(*) FROM {table}")  # noqa: S608 - our names
        finally:
            await db.aclose()
