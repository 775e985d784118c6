"""The receiver's memory of recently published event ids: bounded by age and by count."""

from __future__ import annotations

from receiver.dedupe import RecentIds
from schemas.event import make_event_id


def test_an_id_is_recognised_until_it_ages_out() -> None:
    recent = RecentIds(ttl_seconds=60)
    event_id = make_event_id("wecom", "acme", b"<xml/>", 0)
    recent.add([event_id, "not-hex:id"], now=0)
    assert event_id in recent
    assert "not-hex:id" in recent
    assert make_event_id("wecom", "acme", b"<xml/>", 1) not in recent
    recent.add([], now=61)
    assert event_id not in recent
    assert "not-hex:id" not in recent


def test_the_oldest_go_first_beyond_the_bound() -> None:
    recent = RecentIds(ttl_seconds=3600, max_entries=3)
    ids = [make_event_id("dingtalk", "acme", b"x", n) for n in range(5)]
    for n, event_id in enumerate(ids):
        recent.add([event_id], now=n)
    assert [i in recent for i in ids] == [False, False, True, True, True]
    recent.add([ids[2]], now=10)  # seen again: the newest now
    recent.add([make_event_id("dingtalk", "acme", b"y", 0)], now=11)
    assert ids[2] in recent
    assert ids[3] not in recent
