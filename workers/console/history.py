"""The history pages: every outcome, filtered and paged; one event with everything known about
it and the other events about the same entity; the full-sync runs."""

from __future__ import annotations

import re
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from workers.console.page import Console
from workers.console.sessions import Session
from workers.console.sources import Unreachable
from workers.store.history import OUTCOMES
from workers.store.history_pages import HistoryFilter

PAGE_SIZE: Final = 50
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURSOR: Final = re.compile(r"[0-9T:.\-Z]{1,40}\|\d{1,19}")


async def history_page(request: Request, console: Console, session: Session) -> Response:
    asked = request.query_params
    chosen = HistoryFilter(
        tenant=asked.get("tenant") or None,
        entity=asked.get("entity") if asked.get("entity") in ("user", "department") else None,
        entity_id=(asked.get("entity_id") or "").strip()[:200] or None,
        outcome=asked.get("outcome") if asked.get("outcome") in OUTCOMES else None,
        since=_day(asked.get("since")),
        until=_day(asked.get("until"), end_of_day=True),
    )
    after = asked.get("after")
    after = after if after and _CURSOR.fullmatch(after) else None
    rows = await console.sources.history.page(chosen, after, PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    kept = {k: v for k, v in asked.items() if k != "after" and v}
    return console.render(request, "history.html", session, rows=rows, chosen=chosen,
                          outcomes=OUTCOMES, kept=kept, more=more,
                          next_after=rows[-1].cursor if more else None)  # fmt: skip


async def event_page(request: Request, console: Console, session: Session) -> Response:
    row = await console.sources.history.one(int(request.path_params["row_id"]))
    if row is None:
        return console.refusal(request, session, 404, "No such event in the history.")
    timeline = await console.sources.history.timeline(row.entry.tenant, row.entry.entity_id)
    dead_letter, unreachable = None, None
    if row.entry.outcome == "dead_lettered":
        try:
            dead_letter = next(
                (d for d in await console.sources.dead_letters() if d.origin == row.entry.origin),
                None,
            )
        except Unreachable as exc:
            unreachable = str(exc)
    return console.render(request, "event.html", session, row=row, timeline=timeline,
                          dead_letter=dead_letter, unreachable=unreachable)  # fmt: skip


async def runs_page(request: Request, console: Console, session: Session) -> Response:
    runs = await console.sources.runs.listed(request.query_params.get("tenant") or None, 100)
    return console.render(request, "runs.html", session, runs=runs)


def _day(text: str | None, end_of_day: bool = False) -> str | None:
    """A `YYYY-MM-DD` from a date field as recorded_at text (UTC); anything else: no bound."""
    if not text or not _DAY.fullmatch(text):
        return None
    return f"{text}T23:59:59.999999Z" if end_of_day else f"{text}T00:00:00Z"
