"""The pages where an operator acts, and the actions: dead letters re-driven, held deletions
approved. Each action is recorded in the audit trail, whatever its outcome."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from workers.console.page import Console
from workers.console.sessions import Session
from workers.console.sources import Unreachable
from workers.kafka.dlq import Selection
from workers.kafka.dlq import redrive as put_back
from workers.store.approvals import approve_deletions, parked_events


async def dead_letters_page(request: Request, console: Console, session: Session) -> Response:
    tenant = request.query_params.get("tenant") or None
    try:
        records = await console.sources.dead_letters()
    except Unreachable as exc:
        return console.render(request, "dead_letters.html", session, records=[],
                              unreachable=str(exc), tenant=tenant)  # fmt: skip
    shown = [r for r in records if tenant is None or r.tenant == tenant]
    return console.render(request, "dead_letters.html", session, records=shown,
                          unreachable=None, tenant=tenant)  # fmt: skip


async def redrive(request: Request, console: Console, session: Session, form: FormData) -> Response:
    positions = tuple(str(p) for p in form.getlist("position"))
    everything = form.get("all") == "yes"
    if not positions and not everything:
        return console.refusal(request, session, 400, "Choose the dead letters to re-drive.")
    selection = Selection(positions, everything=everything)
    target = "all" if everything else " ".join(positions)
    try:
        chosen = [r for r in await console.sources.dead_letters() if selection.chooses(r)]
        await put_back(console.sources.settings.kafka, chosen)
    except Unreachable as exc:
        await console.sources.audit.record(session.who, "redrive", target, f"failed: {exc}")
        return console.refusal(request, session, 503, f"Kafka could not be reached: {exc}")
    outcome = f"{len(chosen)} dead letter(s) put back on the topic"
    await console.sources.audit.record(session.who, "redrive", target, outcome)
    return console.render(request, "done.html", session, what=outcome, back="/dead-letters")


async def waiting_page(request: Request, console: Console, session: Session) -> Response:
    url = console.sources.settings.store.url
    held = await parked_events(url, None, "held", limit=1000)
    parked = await parked_events(url, None, "parked", limit=1000)
    by_tenant: dict[str, list[object]] = {}
    for event in held:
        by_tenant.setdefault(event.tenant, []).append(event)
    return console.render(request, "waiting.html", session, held=by_tenant, parked=parked)


async def approve(request: Request, console: Console, session: Session, form: FormData) -> Response:
    tenant = str(form.get("tenant") or "")
    if console.sources.settings.tenant(tenant) is None:
        return console.refusal(request, session, 400, "No such tenant.")
    released = await approve_deletions(console.sources.settings.store.url, tenant)
    outcome = f"{released} held deletion(s) released; the worker applies them next"
    await console.sources.audit.record(session.who, "approve-deletions", tenant, outcome)
    return console.render(request, "done.html", session, what=outcome, back="/waiting")


async def audit_page(request: Request, console: Console, session: Session) -> Response:
    before = request.query_params.get("before")
    before_id = int(before) if before and before.isdecimal() and len(before) < 19 else None
    entries = await console.sources.audit.listed(before_id, 51)
    more = len(entries) > 50
    entries = entries[:50]
    return console.render(request, "audit.html", session, entries=entries,
                          next_before=entries[-1].id if more else None)  # fmt: skip
