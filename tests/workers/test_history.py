"""The sync history store and `orgstream history`, as an operator reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.event import utc_iso
from tests.test_cli import run
from workers.history import HistoryEntry, HistoryQuery, SqliteHistory, open_history


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


async def test_entries_come_back_newest_first_and_filtered(tmp_path: Path) -> None:
    store = open_history(f"sqlite:///{tmp_path / 'h.db'}")
    assert isinstance(store, SqliteHistory)
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
    store.close()


async def test_history_command_prints_a_table_and_json(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    store = open_history(f"sqlite:///{db}")
    await store.record(entry("zhangwei", retries=["WeCom errcode 42001: token renewed"]))
    await store.record(entry("lisi", "dead_lettered", error="SCIM 409 uniqueness: taken"))
    store.close()
    config = tmp_path / "orgstream.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    table = run("history", "--config", str(config))
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["time", "tenant", "entity"]
    assert "SCIM 409 uniqueness: taken" in rows[0]
    assert "after 1 retries: WeCom errcode 42001: token renewed" in rows[1]
    as_json = run("history", "--config", str(config), "--json", "--outcome", "dead_lettered")
    assert [json.loads(line)["entity_id"] for line in as_json.stdout.splitlines()] == ["lisi"]
    assert run("history", "--config", str(config), "--since", "yesterday").returncode == 2
