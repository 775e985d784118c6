"""`orgstream history`: the sync history as a table a person reads, or as JSON lines."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from workers.history import HistoryEntry

_HEADINGS = ("time", "tenant", "entity", "id", "change", "outcome", "retries", "ms", "detail")


def as_json(entries: Sequence[HistoryEntry]) -> str:
    return "\n".join(orjson.dumps(e.to_dict()).decode() for e in entries)


def as_table(entries: Sequence[HistoryEntry]) -> str:
    """Newest first; `detail` is the error, else the retried steps, else the SCIM writes."""
    rows = [
        (
            e.recorded_at[:19].replace("T", " "),
            e.tenant,
            e.entity,
            e.entity_id,
            e.change,
            e.outcome,
            str(len(e.retries)),
            f"{e.duration_ms:.0f}",
            _detail(e),
        )
        for e in entries
    ]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(_HEADINGS[:-1])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEADINGS, [*widths, 0], strict=True))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, [*widths, 0], strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def _detail(entry: HistoryEntry) -> str:
    if entry.error:
        return entry.error
    if entry.retries:
        return f"after {len(entry.retries)} retries: " + " | ".join(entry.retries)
    return "; ".join(entry.operations) or "already in step"
