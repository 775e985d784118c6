"""The console's web app: the login, the pages, and the checks every request passes.

A page needs a session (else the login page); an action (a POST) needs the `operator` role
(else 403) and the session's CSRF token in the form (else 403). Tokens travel only in the
login form's body, never in a URL; the session cookie is HttpOnly and SameSite=Strict. Every
answer forbids framing and caching and allows scripts and styles from the console alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

import jinja2
import structlog
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from schemas.config import Settings
from workers.console import actions, charts, directory_pages, history, runs, tenants
from workers.console.launches import Launcher
from workers.console.page import Console
from workers.console.samples import Sampler
from workers.console.sessions import Session, Sessions
from workers.console.sources import open_sources

log = structlog.get_logger("orgstream.console")

COOKIE: Final = "orgstream_console"
_HERE: Final = Path(__file__).parent
_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make the login's Origin "null"
    "Cache-Control": "no-store",
}
View = Callable[[Request, Console, Session], Awaitable[Response]]
Action = Callable[[Request, Console, Session, FormData], Awaitable[Response]]


def create_console_app(settings: Settings, config: Path | None = None) -> Starlette:
    """`config`: the file `settings` came from, which a sync started here is given."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    templates = Jinja2Templates(env=environment)
    sessions = Sessions(settings.console.users, settings.console.session_minutes)
    state: dict[str, Console] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with open_sources(settings) as sources:
            sampler = Sampler(sources, settings.console.sample_seconds)
            sampling = asyncio.create_task(sampler.run())
            launcher = Launcher(config, sources.audit)
            state["console"] = Console(sources, templates, sampler, launcher)
            try:
                yield
            finally:
                await launcher.aclose()
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling

    def page(view: View) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = sessions.find(request.cookies.get(COOKIE))
            if session is None:
                return RedirectResponse("/login", status_code=303)
            return await view(request, state["console"], session)

        return endpoint

    def action(act: Action) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = sessions.find(request.cookies.get(COOKIE))
            console = state["console"]
            if session is None:
                return RedirectResponse("/login", status_code=303)
            if not session.may_act:
                return console.refusal(request, session, 403, "Only an operator may do this.")
            form = await request.form()
            if not session.csrf_matches(form.get("csrf")):
                return console.refusal(
                    request, session, 403, "The form's CSRF token is missing or wrong: reload "
                    "the page and try again.",
                )  # fmt: skip
            return await act(request, console, session, form)

        return endpoint

    async def login_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "login.html", {"failed": False})

    async def log_in(request: Request) -> Response:
        origin = request.headers.get("origin")
        own = settings.console.public_origin or f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            # Another site's form logging the browser in as someone else (login CSRF).
            return PlainTextResponse("a login comes from the console's own page", 403)
        form = await request.form()
        token = form.get("token")
        opened = sessions.log_in(token) if isinstance(token, str) else None
        if opened is None:
            log.warning("console_login_refused", client=_client(request))
            return templates.TemplateResponse(request, "login.html", {"failed": True}, 401)
        key, session = opened
        log.info("console_login", who=session.who, role=session.role, client=_client(request))
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(
            COOKIE,
            key,
            max_age=settings.console.session_minutes * 60,
            httponly=True,
            samesite="strict",
            secure=settings.console.secure_cookies or request.url.scheme == "https",
        )
        return answer

    async def log_out(request: Request) -> Response:
        key = request.cookies.get(COOKIE)
        session = sessions.find(key)
        form = await request.form()
        if session is None or not session.csrf_matches(form.get("csrf")):
            return RedirectResponse("/", status_code=303)  # another site's form: nothing done
        sessions.log_out(key)
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE)
        return answer

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", log_in, methods=["POST"]),
            Route("/logout", log_out, methods=["POST"]),
            Route("/", page(tenants.tenants_page)),
            Route("/history", page(history.history_page)),
            Route("/history/{row_id:int}", page(history.event_page)),
            Route("/dead-letters", page(actions.dead_letters_page)),
            Route("/dead-letters/redrive", action(actions.redrive), methods=["POST"]),
            Route("/waiting", page(actions.waiting_page)),
            Route("/waiting/approve", action(actions.approve), methods=["POST"]),
            Route("/runs", page(runs.runs_page)),
            Route("/runs/start", action(runs.start_run), methods=["POST"]),
            Route("/runs/started/{key}", page(runs.launch_page)),
            Route("/charts", page(charts.charts_page)),
            Route("/audit", page(actions.audit_page)),
            Route("/directory", page(directory_pages.tree)),
            Route("/directory/{tenant}", page(directory_pages.tree)),
            Route("/directory/{tenant}/department/{department}", page(directory_pages.department)),
            Route("/directory/{tenant}/user/{userid}", page(directory_pages.user)),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=_guarded)],
    )


async def _guarded(request: Request, call_next: RequestResponseEndpoint) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    # The path alone: no query string (a filter may hold an id), never a cookie or a token.
    log.info("console_request", method=request.method, path=request.url.path,
             status=response.status_code,
             ms=round((time.perf_counter() - started) * 1000, 1))  # fmt: skip
    return response


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"
