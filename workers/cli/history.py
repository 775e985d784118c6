"""`orgstream history`: the sync history as a table a person reads, or as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import orjson

from workers.cli.options import Commands, config_option, settings_of, since
from workers.cli.printable import printable
from workers.store.history import OUTCOMES, HistoryEntry, HistoryQuery, open_history

_HEADINGS = ("time", "tenant", "entity", "id", "change", "outcome", "retries", "ms", "detail")


def register(commands: Commands) -> None:
    history = commands.add_parser(
        "history", help="show the sync history: each event's outcome, retries and errors"
    )
    config_option(history)
    history.add_argument("--tenant", help="only this tenant")
    history.add_argument("--entity-id", help="only this user or department id")
    history.add_argument("--outcome", choices=OUTCOMES, help="only this outcome")
    history.add_argument(
        "--since", type=since, help="only newer entries: ISO 8601, or relative like 2h, 30m, 7d"
    )
    history.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    history.add_argument(
        "--runs", action="store_true", help="full-sync runs instead: counts, status, errors"
    )
    history.set_defaults(run=_history)


def _history(args: argparse.Namespace) -> int:
    if args.runs:
        from workers.cli.sync import show_runs

        return show_runs(args)
    url = settings_of(args).store.url
    query = HistoryQuery(args.tenant, args.entity_id, args.outcome, args.since, args.limit)

    async def read() -> list[HistoryEntry]:
        store = open_history(url)
        try:
            return await store.query(query)
        finally:
            await store.aclose()

    entries = asyncio.run(read())
    print(as_json(entries) if args.json else as_table(entries))
    return 0


def as_json(entries: Sequence[HistoryEntry]) -> str:
    return "\n".join(orjson.dumps(e.to_dict()).decode() for e in entries)


def as_table(entries: Sequence[HistoryEntry]) -> str:
    """Newest first; `detail` is the error, else the retried steps, else the SCIM writes."""
    rows = [
        tuple(
            printable(cell)
            for cell in (
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
