"""The history pages: every outcome, filtered and paged; one event with everything known about
it and the other events about the same entity."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from workers.console.page import Console
from workers.console.sessions import Session
from workers.console.sources import Unreachable
from workers.store.history import OUTCOMES
from workers.store.history_pages import HistoryFilter

PAGE_SIZE: Final = 50
_FILTERS: Final = ("tenant", "entity", "entity_id", "outcome", "since", "until")
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURSOR: Final = re.compile(r"[0-9T:.\-Z]{1,40}\|\d{1,18}")  # an id below 2**63
LARGEST_ID: Final = 2**63 - 1


async def history_page(request: Request, console: Console, session: Session) -> Response:
    asked = request.query_params
    entity_id = "".join(c for c in asked.get("entity_id") or "" if c.isprintable())
    chosen = HistoryFilter(
        tenant=console.tenant_asked(asked.get("tenant")),
        entity=asked.get("entity") if asked.get("entity") in ("user", "department") else None,
        entity_id=entity_id.strip()[:200] or None,
        outcome=asked.get("outcome") if asked.get("outcome") in OUTCOMES else None,
        since=_day(asked.get("since")),
        until=_day(asked.get("until"), next_day=True),
    )
    after = asked.get("after")
    after = after if after and _CURSOR.fullmatch(after) else None
    rows = await console.sources.history.page(chosen, after, PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    kept = {k: v for k, v in asked.items() if k in _FILTERS and v}
    return console.render(request, "history.html", session, rows=rows, chosen=chosen,
                          outcomes=OUTCOMES, kept=kept, more=more,
                          next_after=rows[-1].cursor if more else None)  # fmt: skip


async def event_page(request: Request, console: Console, session: Session) -> Response:
    row_id = int(request.path_params["row_id"])
    row = await console.sources.history.one(row_id) if row_id <= LARGEST_ID else None
    if row is None:
        return console.refusal(request, session, 404, "No such event in the history.")
    timeline = await console.sources.history.timeline(row.entry.tenant, row.entry.entity_id)
    dead_letter, unreachable, redriven = None, None, None
    if row.entry.outcome == "dead_lettered":
        try:
            dead_letter = next(
                (d for d in await console.sources.dead_letters() if d.origin == row.entry.origin),
                None,
            )
        except Unreachable as exc:
            unreachable = str(exc)
        if dead_letter is not None:
            marks = await console.sources.redriven.marks()
            redriven = marks.get((dead_letter.topic, dead_letter.position))
    return console.render(request, "event.html", session, row=row, timeline=timeline,
                          dead_letter=dead_letter, unreachable=unreachable,
                          redriven=redriven)  # fmt: skip


def _day(text: str | None, next_day: bool = False) -> str | None:
    """A `YYYY-MM-DD` from a date field as recorded_at text (UTC): its first moment, or the
    next day's (an exclusive end); anything else is no bound."""
    if not text or not _DAY.fullmatch(text):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    if next_day:
        day += timedelta(days=1)
    return f"{day.isoformat()}T00:00:00.000Z"
