"""What the pages show: the history filtered and paged, an event with its writes, error and
timeline, what the guard holds and its approval, each action in the audit trail."""

from __future__ import annotations

import asyncio
import re
import time

from starlette.testclient import TestClient

from tests.console.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, log_in
from workers.store.history import HistoryEntry, open_history
from workers.store.parking import open_parking


def entry(i: int, **fields: object) -> HistoryEntry:
    values: dict[str, object] = {
        "recorded_at": f"2026-11-{1 + i // 1000:02d}T10:{(i // 60) % 60:02d}:{i % 60:02d}.000Z",
        "tenant": "acme", "vendor": "wecom", "entity": "user", "entity_id": f"u{i % 7}",
        "change": "update", "event_id": f"e{i}", "outcome": "applied", "attempts": 1,
        "origin": f"orgstream.events/0/{i}", "duration_ms": float(i % 10),
    }  # fmt: skip
    return HistoryEntry(**(values | fields))  # type: ignore[arg-type]


async def recorded(store_url: str, entries: list[HistoryEntry]) -> None:
    history = open_history(store_url)
    try:
        for one in entries:
            await history.record(one)
    finally:
        await history.aclose()


def rows_of(page: str) -> list[str]:
    """The event links of a history page, in order."""
    return re.findall(r'<td><a href="/history/(\d+)">', page)


def test_history_pages_newest_first_and_filters(console: TestClient, store_url: str) -> None:
    failing = {"outcome": "dead_lettered", "error": "SCIM 400 invalidValue: <mobile> rejected"}
    asyncio.run(recorded(store_url, [entry(i, **(failing if i % 40 == 0 else {}))
                                     for i in range(120)]))  # fmt: skip
    log_in(console, VIEWER_TOKEN)

    first = console.get("/history")
    assert len(rows_of(first.text)) == 50
    assert rows_of(first.text)[0] == "120"  # the newest
    older = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert older is not None
    second = console.get(older.group(1).replace("&amp;", "&"))
    third_link = re.search(r'rel="next" href="([^"]+)"', second.text)
    assert third_link is not None
    third = console.get(third_link.group(1).replace("&amp;", "&"))
    seen = rows_of(first.text) + rows_of(second.text) + rows_of(third.text)
    assert seen == [str(i) for i in range(120, 0, -1)]  # every row once, in order
    assert 'rel="next"' not in third.text

    dead = console.get("/history", params={"outcome": "dead_lettered", "tenant": "acme"})
    assert rows_of(dead.text) == ["81", "41", "1"]
    assert "&lt;mobile&gt; rejected" in dead.text  # escaped, never markup
    by_id = rows_of(console.get("/history", params={"entity_id": "u3"}).text)
    assert len(by_id) == len([i for i in range(120) if i % 7 == 3])
    none = console.get("/history", params={"tenant": "globex"})
    assert "Nothing matches." in none.text
    assert rows_of(console.get("/history", params={"since": "2026-11-02"}).text) == []
    day = console.get("/history", params={"since": "2026-11-01", "until": "2026-11-01"})
    assert len(rows_of(day.text)) == 50  # both ends inclusive: the whole first day
    for odd in ({"since": "2026-13-45"}, {"tenant": "nosuch"}, {"entity_id": "u3\x00"},
                {"after": "2026|99999999999999999999"}):  # fmt: skip
        assert console.get("/history", params=odd).status_code == 200, odd
    assert console.get("/history/99999999999999999999").status_code == 404


def test_rows_recorded_in_the_same_millisecond_page_once_each(
    console: TestClient, store_url: str
) -> None:
    same = "2026-11-05T08:00:00.000Z"
    asyncio.run(recorded(store_url, [entry(i, recorded_at=same) for i in range(75)]))
    log_in(console, VIEWER_TOKEN)
    first = console.get("/history")
    older = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert older is not None
    second = console.get(older.group(1).replace("&amp;", "&"))
    assert rows_of(first.text) + rows_of(second.text) == [str(i) for i in range(75, 0, -1)]


def test_an_event_page_shows_writes_error_and_timeline(console: TestClient, store_url: str) -> None:
    asyncio.run(recorded(store_url, [
        entry(0, entity_id="zhangsan", change="create", operations=["POST /Users 201"]),
        entry(1, entity_id="lisi"),
        entry(2, entity_id="zhangsan", outcome="dead_lettered", retries=["PATCH /Groups/g1 503"],
              error="SCIM 409 uniqueness: userName zhangsan is taken"),
    ]))  # fmt: skip
    log_in(console, VIEWER_TOKEN)
    page = console.get("/history/3").text
    assert "SCIM 409 uniqueness: userName zhangsan is taken" in page
    assert "PATCH /Groups/g1 503" in page
    timeline = page[page.index('id="timeline"') :]
    assert rows_of(timeline) == ["1", "3"]  # zhangsan's rows, oldest first; not lisi's
    assert "POST /Users 201" in console.get("/history/1").text
    assert console.get("/history/99").status_code == 404


def test_held_deletions_are_listed_then_approved_and_audited(
    console: TestClient, store_url: str
) -> None:
    async def hold() -> None:
        lot = open_parking(store_url)
        try:
            for user in ("wangwu", "zhaoliu"):
                await lot.park("acme", f"user:{user}", b"{}", "orgstream.events/0/1", "held",
                               "the mass-deletion guard holds it", time.time(), 0)  # fmt: skip
        finally:
            await lot.aclose()

    asyncio.run(hold())
    csrf = log_in(console, OPERATOR_TOKEN)
    waiting = console.get("/waiting").text
    assert "acme: 2 deletion(s) held" in waiting
    assert "user:wangwu" in waiting
    assert "user:zhaoliu" in waiting

    form = {"tenant": "acme", "csrf": csrf}
    stale = console.post("/waiting/approve", data={**form, "listed": "1", "newest": "1"})
    assert stale.status_code == 409  # one more was held since the page was shown
    assert "acme: 2 deletion(s) held" in console.get("/waiting").text
    newest = re.search(r'name="newest" value="(\d+)"', waiting)
    assert newest is not None
    done = console.post("/waiting/approve", data={**form, "listed": "2", "newest": newest[1]})
    assert "2 held deletion(s) released" in done.text
    assert "Nothing held." in console.get("/waiting").text
    audit = console.get("/audit").text
    assert "otto" in audit
    assert "approve-deletions" in audit
    assert "2 held deletion(s) released" in audit
