"""The pages where an operator acts, and the actions: dead letters re-driven, held deletions
approved. Each action is recorded in the audit trail, whatever its outcome."""

from __future__ import annotations

import re
from typing import Final

from aiokafka.errors import KafkaError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from workers.console.page import Console
from workers.console.sessions import Session
from workers.console.sources import Unreachable, in_time
from workers.kafka.dlq import DeadLetterRecord, Selection
from workers.kafka.dlq import redrive as put_back
from workers.kafka.producer import PublishFailed
from workers.store.approvals import approve_deletions
from workers.store.parking import ParkedEvent

SHOWN_WAITING: Final = 1000
_POSITION: Final = re.compile(r"(?:[A-Za-z0-9._-]{1,249}:)?\d{1,10}:\d{1,19}")


async def dead_letters_page(request: Request, console: Console, session: Session) -> Response:
    tenant = console.tenant_asked(request.query_params.get("tenant"))
    try:
        records = await console.sources.dead_letters()
    except Unreachable as exc:
        return console.render(request, "dead_letters.html", session, records=[], marks={},
                              unreachable=str(exc), tenant=tenant)  # fmt: skip
    shown = [r for r in records if tenant is None or r.tenant == tenant]
    marks = {
        position: mark for (_, position), mark in (await console.sources.redriven.marks()).items()
    }
    return console.render(request, "dead_letters.html", session, records=shown, marks=marks,
                          unreachable=None, tenant=tenant)  # fmt: skip


async def redrive(request: Request, console: Console, session: Session, form: FormData) -> Response:
    """The ticked dead letters, or every one not yet re-driven (of the page's tenant, when the
    page showed one tenant's)."""
    positions = tuple(str(p) for p in form.getlist("position") if _POSITION.fullmatch(str(p)))
    everything = form.get("all") == "yes"
    tenant = console.tenant_asked(str(form.get("tenant") or ""))
    if bool(positions) == everything:
        why = "Tick the dead letters to re-drive, or choose all of them."
        return console.refusal(request, session, 400, why)
    sources = console.sources
    target = (
        f"all of {tenant}"
        if everything and tenant
        else "all"
        if everything
        else " ".join(positions)
    )
    chosen: list[DeadLetterRecord] = []
    try:
        records = await sources.dead_letters()
        if everything:
            done = await sources.redriven.marks()
            chosen = [r for r in records if (r.topic, r.position) not in done
                      and (tenant is None or r.tenant == tenant)]  # fmt: skip
        else:
            chosen = [r for r in records if Selection(positions).chooses(r)]
        chosen = [r for r in chosen if not r.stuck]  # unreadable records stay for a person
        await in_time(put_back(sources.settings.kafka, chosen))
    except (Unreachable, PublishFailed, KafkaError) as exc:
        why = str(exc) or type(exc).__name__
        outcome = f"failed: {why}; {len(chosen)} chosen, some may be back on the topic"
        await sources.audit.record(session.who, "redrive", target, outcome)
        return console.refusal(request, session, 503, f"The re-drive did not finish: {why}")
    await sources.redriven.mark([(r.topic, r.position) for r in chosen], session.who)
    outcome = f"{len(chosen)} dead letter(s) put back on the topic"
    await sources.audit.record(session.who, "redrive", target, outcome)
    return console.render(request, "done.html", session, what=outcome, back="/dead-letters")


async def waiting_page(request: Request, console: Console, session: Session) -> Response:
    lot = console.sources.parking
    held = await lot.listed(None, "held", limit=100_000)
    parked = await lot.listed(None, "parked", limit=SHOWN_WAITING)
    by_tenant: dict[str, list[ParkedEvent]] = {}
    for event in held:
        by_tenant.setdefault(event.tenant, []).append(event)
    return console.render(request, "waiting.html", session, held=by_tenant, parked=parked,
                          shown=SHOWN_WAITING)  # fmt: skip


async def approve(request: Request, console: Console, session: Session, form: FormData) -> Response:
    """Release what the page listed: if the held deletions changed since (more were held, some
    were released elsewhere), nothing is released and the operator looks again."""
    sources = console.sources
    tenant = sources.settings.tenant(str(form.get("tenant") or ""))
    if tenant is None:
        return console.refusal(request, session, 400, "No such tenant.")
    listed = f"{form.get('listed') or '?'} up to #{form.get('newest') or '?'}"
    held = await sources.parking.listed(tenant.id, "held", limit=100_000)
    now = f"{len(held)} up to #{max((e.id for e in held), default=0)}"
    if not held or listed != now:
        # Ids only grow: the same count up to the same newest id is the same set.
        outcome = f"refused: the page listed {listed}, {now} are held now"
        await sources.audit.record(session.who, "approve-deletions", tenant.id, outcome)
        why = "The held deletions changed since the page was shown: look at them again."
        return console.refusal(request, session, 409, why)
    released = await approve_deletions(sources.settings.store.url, tenant.id)
    outcome = f"{released} held deletion(s) released; the worker applies them next"
    await sources.audit.record(session.who, "approve-deletions", tenant.id, outcome)
    return console.render(request, "done.html", session, what=outcome, back="/waiting")


async def audit_page(request: Request, console: Console, session: Session) -> Response:
    before = request.query_params.get("before")
    before_id = int(before) if before and before.isdecimal() and len(before) < 19 else None
    entries = await console.sources.audit.listed(before_id, 51)
    more = len(entries) > 50
    entries = entries[:50]
    return console.render(request, "audit.html", session, entries=entries,
                          next_before=entries[-1].id if more else None)  # fmt: skip
