"""What every page handler gets: the sources, the templates, and one way to render."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from workers.console.launches import Launcher
from workers.console.samples import Sampler
from workers.console.sessions import Session
from workers.console.sources import Sources


@dataclass(frozen=True)
class Console:
    sources: Sources
    templates: Jinja2Templates
    sampler: Sampler | None = None  # lag and throughput for the charts
    launcher: Launcher | None = None  # syncs started from the console

    def render(
        self, request: Request, name: str, session: Session, status: int = 200, **context: Any
    ) -> Response:
        context = {"refresh": False, **context}  # a page that watches something reloads itself
        context |= {"session": session, "tenants": [t.id for t in self.sources.settings.tenants]}
        return self.templates.TemplateResponse(request, name, context, status)

    def tenant_asked(self, asked: str | None) -> str | None:
        """A tenant named in a query or a form: one of the configuration's, or none."""
        known = {t.id for t in self.sources.settings.tenants}
        return asked if asked in known else None

    def refusal(self, request: Request, session: Session, status: int, why: str) -> Response:
        return self.render(request, "refused.html", session, status, why=why)
