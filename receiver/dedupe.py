"""Recently published event ids, so a vendor retry of an acked callback is not published again.

Per process and bounded; across replicas the deterministic event id still lets the worker
treat a duplicate as a no-op. Entries live longer than twice the timestamp window, so a captured
request replayed inside the window is recognized too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class RecentIds:
    def __init__(self, ttl_seconds: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        # Keyed by the id's 16 bytes rather than its 32 hex characters: 100,000 entries are
        # the receiver's largest allocation, and the bytes take a third of the text's memory.
        self._seen: OrderedDict[bytes | str, float] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and _key(event_id) in self._seen

    def add(self, event_ids: Iterable[str], now: float) -> None:
        for event_id in event_ids:
            key = _key(event_id)
            self._seen[key] = now
            self._seen.move_to_end(key)
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._seen:
            oldest, seen_at = next(iter(self._seen.items()))
            if len(self._seen) <= self._max and now - seen_at <= self._ttl:
                return
            del self._seen[oldest]


def _key(event_id: str) -> bytes | str:
    """The id as bytes: an event id is 32 hex digits (`make_event_id`), so this loses nothing;
    anything else stays text (a str never equals a bytes, so the two cannot collide)."""
    try:
        return bytes.fromhex(event_id)
    except ValueError:
        return event_id
