"""The sync history store and `orgstream history`, as an operator reads them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.event import utc_iso
from tests.stores import postgres_store_url
from tests.test_cli import run
from workers.cli.history import as_table
from workers.store.history import HistoryEntry, HistoryQuery, open_history


def test_an_unreachable_postgresql_is_a_clear_config_error(tmp_path: Path) -> None:
    config = tmp_path / "orgstream.toml"
    config.write_text('[store]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n', encoding="utf-8")
    result = run("history", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith("orgstream: configuration error: store.url: cannot connect")


def entry(
    entity_id: str, outcome: str = "applied", ago: float = 0.0, **extra: object
) -> HistoryEntry:
    fields: dict[str, object] = {
        "recorded_at": utc_iso(datetime.now(UTC).timestamp() - ago),
        "tenant": "acme",
        "vendor": "dingtalk",
        "entity": "user",
        "entity_id": entity_id,
        "change": "updated",
        "event_id": f"ev-{entity_id}",
        "outcome": outcome,
        "attempts": 1,
        "origin": "orgstream.contact-events/0/7",
        "duration_ms": 12.5,
        **extra,
    }
    return HistoryEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty store of each kind: an SQLite file, or a schema of its own in the
    PostgreSQL on 127.0.0.1:5432 (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'h.db'}"
        return
    async with postgres_store_url() as url:
        yield url


async def test_entries_come_back_newest_first_and_filtered(store_url: str) -> None:
    store = open_history(store_url)
    await store.record(entry("old", ago=7200))
    await store.record(
        entry("zhangwei", retries=["DingTalk errcode 90018 (rate limited); retried in 0.6 s"])
    )
    await store.record(entry("bad", "dead_lettered", tenant="beta", error="SCIM 400 invalidValue"))
    everything = await store.query(HistoryQuery())
    assert [e.entity_id for e in everything] == ["bad", "zhangwei", "old"]
    assert everything[1].retries == ["DingTalk errcode 90018 (rate limited); retried in 0.6 s"]
    recent = await store.query(HistoryQuery(since=datetime.now(UTC) - timedelta(hours=1)))
    assert {e.entity_id for e in recent} == {"bad", "zhangwei"}
    failed = await store.query(HistoryQuery(outcome="dead_lettered"))
    assert [(e.tenant, e.error) for e in failed] == [("beta", "SCIM 400 invalidValue")]
    assert [e.entity_id for e in await store.query(HistoryQuery(tenant="acme"))] == [
        "zhangwei",
        "old",
    ]
    assert await store.prune(datetime.now(UTC) - timedelta(hours=1)) == 1
    assert [e.entity_id for e in await store.query(HistoryQuery())] == ["bad", "zhangwei"]
    await store.aclose()


async def test_history_command_prints_a_table_and_json(store_url: str, tmp_path: Path) -> None:
    store = open_history(store_url)
    await store.record(entry("zhangwei", retries=["WeCom errcode 42001: token renewed"]))
    await store.record(entry("lisi", "dead_lettered", error="SCIM 409 uniqueness: taken"))
    await store.aclose()
    config = tmp_path / "orgstream.toml"
    config.write_text(f'[store]\nurl = "{store_url}"\n', encoding="utf-8")
    table = run("history", "--config", str(config))
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["time", "tenant", "entity"]
    assert "SCIM 409 uniqueness: taken" in rows[0]
    assert "after 1 retries: WeCom errcode 42001: token renewed" in rows[1]
    as_json = run("history", "--config", str(config), "--json", "--outcome", "dead_lettered")
    assert [json.loads(line)["entity_id"] for line in as_json.stdout.splitlines()] == ["lisi"]
    assert run("history", "--config", str(config), "--since", "yesterday").returncode == 2


def test_the_table_shows_control_characters_as_escapes() -> None:
    """Vendor-supplied ids and errors are shown to a person, never run by their terminal."""
    hostile = entry(
        "evil\x1b[2J\x1b]0;owned\x07",
        outcome="dead_lettered",
        error="SCIM 400: name \u202eexe.txt\x9b31m",
    )
    table = as_table([hostile])
    assert not any(ch in table for ch in "\x1b\x07\u202e\x9b")
    assert "evil\\x1b[2J\\x1b]0;owned\\x07" in table
    assert "\\u202eexe.txt\\x9b31m" in table
