"""The Runs page: the full syncs in the store, the ones started here with their progress, and
the form that starts a sync or a dry run; a started run's page with what it did or would do."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from workers.console.page import Console
from workers.console.sessions import Session


async def runs_page(request: Request, console: Console, session: Session) -> Response:
    tenant = console.tenant_asked(request.query_params.get("tenant"))
    runs = await console.sources.runs.listed(tenant, 100)
    launcher = console.launcher
    launches = sorted(launcher.launches.values(), key=lambda x: -x.started) if launcher else []
    return console.render(request, "runs.html", session, runs=runs, launches=launches,
                          can_start=bool(launcher and launcher.can_start),
                          refresh=any(x.running for x in launches))  # fmt: skip


async def start_run(
    request: Request, console: Console, session: Session, form: FormData
) -> Response:
    tenant = console.tenant_asked(str(form.get("tenant") or ""))
    launcher = console.launcher
    if launcher is None or not launcher.can_start:
        return console.refusal(request, session, 409, "This console was started without a "
                               "configuration file, so it cannot start a sync.")  # fmt: skip
    if tenant is None:
        return console.refusal(request, session, 400, "Choose a tenant.")
    launch = await launcher.start(tenant, form.get("dry_run") == "yes", session.who)
    return RedirectResponse(f"/runs/started/{launch.key}", status_code=303)


async def launch_page(request: Request, console: Console, session: Session) -> Response:
    launcher = console.launcher
    launch = launcher.launches.get(request.path_params["key"]) if launcher else None
    if launch is None:
        return console.refusal(request, session, 404, "No such run started from this console.")
    return console.render(request, "launch.html", session, launch=launch,
                          progress=launch.progress(), outcome=launch.outcome(),
                          errors=launch.errors(), refresh=launch.running)  # fmt: skip
