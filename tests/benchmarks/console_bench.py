"""Bench 9: the console's history page over 200,000 history rows, on SQLite (the embedded
default) and on PostgreSQL: the first page, a filtered page (tenant and outcome), one entity's
rows, and a page deep in the history (by its cursor), each timed over sequential requests to
an `orgstream console` process; the baseline is the same process's login page (a template,
no store)."""

from __future__ import annotations

import contextlib
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psycopg

from schemas.event import utc_iso
from tests.benchmarks.common import Result, percentile
from tests.benchmarks.stack import Services, orgstream_process
from tests.stores import postgres_store_url
from workers.dev import devstack
from workers.store.history import HISTORY_COLUMNS, open_history

ROWS = 200_000
REQUESTS = 200
TOKEN = "bench-console-operator-token"
TENANTS = ("acme", "globex", "initech")


async def bench_console(services: Services, workdir: Path) -> list[Result]:
    results: list[Result] = []
    sqlite_url = f"sqlite:///{workdir / 'console-history.db'}"
    for store, opened in (("SQLite", _sqlite(sqlite_url)), ("PostgreSQL", postgres_store_url())):
        async with opened as url:
            await _fill(url)
            results += await _measure(store, url, services, workdir)
    return results


@contextlib.asynccontextmanager
async def _sqlite(url: str) -> AsyncIterator[str]:
    yield url


def _rows() -> list[tuple[object, ...]]:
    """A month of outcomes: 3 tenants, 20,000 users, 1 % dead-lettered, 2 % parked."""
    chooser = random.Random(20261201)
    start = time.time() - 30 * 86400
    rows = []
    for i in range(ROWS):
        outcome = chooser.choices(("applied", "skipped", "parked", "dead_lettered"),
                                  (90, 7, 2, 1))[0]  # fmt: skip
        error = "SCIM 409 uniqueness: userName taken" if outcome == "dead_lettered" else None
        values = {
            "recorded_at": utc_iso(start + i * 30 * 86400 / ROWS), "tenant": TENANTS[i % 3],
            "vendor": "wecom", "entity": "user", "entity_id": f"u{chooser.randrange(20_000)}",
            "change": "updated", "event_id": f"e{i}", "outcome": outcome, "attempts": 1,
            "retries": "[]", "operations": orjson.dumps(["PATCH /Users/x 200"]).decode(),
            "error": error, "duration_ms": 12.5, "origin": f"orgstream.events/{i % 3}/{i}",
        }  # fmt: skip
        rows.append(tuple(values[c] for c in HISTORY_COLUMNS))
    return rows


async def _fill(url: str) -> None:
    history = open_history(url)
    await history.prune(datetime(1970, 1, 1, tzinfo=UTC))  # the first query makes the table
    await history.aclose()
    rows = _rows()
    columns = ", ".join(HISTORY_COLUMNS)
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            marks = ", ".join("?" for _ in HISTORY_COLUMNS)
            db.executemany(f"INSERT INTO sync_history ({columns}) VALUES ({marks})", rows)  # noqa: S608
            db.execute("ANALYZE")
        return
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        async with db.cursor().copy(f"COPY sync_history ({columns}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        await db.execute("ANALYZE sync_history")


async def _measure(store: str, url: str, services: Services, workdir: Path) -> list[Result]:
    port = devstack.free_port()
    config = workdir / f"console-{store}.toml"
    config.write_text(
        f'[store]\nurl = "{url}"\n[kafka]\nbootstrap_servers = "{services.bootstrap}"\n'
        f'[console]\nport = {port}\n[[console.users]]\nname = "bench"\nrole = "viewer"\n'
        f'token = "{TOKEN}"\n' + "".join(devstack.random_wecom_tenant(t) for t in TENANTS),
        encoding="utf-8",
    )
    process = orgstream_process("console", config, services.logs, port, f"console-{store}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await client.post("/login", data={"token": TOKEN})
            first = await client.get("/history")
            deep = await _deep_cursor(client)
            pages = {
                "first page": "/history",
                "tenant + outcome filter": "/history?tenant=globex&outcome=dead_lettered",
                "one entity's rows": "/history?entity_id=u4242",
                "a page 30,000 rows deep": f"/history?after={deep}",
            }
            assert first.status_code == 200
            assert "<table" in first.text
            baseline = await _p95(client, "/login")
            results = []
            for name, path in pages.items():
                value = await _p95(client, path)
                results.append(Result(
                    "9 console", f"history {name}, {ROWS:,} rows, {store}: p95", value, "ms",
                    baseline, "login page p95, same process", "< 300 ms", value < 300,
                ))  # fmt: skip
            return results
    finally:
        process.stop()


async def _deep_cursor(client: httpx.AsyncClient) -> str:
    """The cursor 30,000 rows from the newest, found as a reader finds it: 600 "Older" links."""
    path = "/history"
    for _ in range(600):
        page = (await client.get(path)).text
        found = re.search(r'rel="next" href="/history\?after=([^"]+)"', page)
        assert found is not None
        path = f"/history?after={found.group(1)}"
    return path.rpartition("after=")[2]


async def _p95(client: httpx.AsyncClient, path: str) -> float:
    took = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        answer = await client.get(path)
        took.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, path
    return percentile(took, 0.95)
