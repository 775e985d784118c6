"""The baseline server: a bare Starlette endpoint answering a constant, served by uvicorn with
the receiver's settings (`uvicorn tests.benchmarks.bare_app:app`)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def constant(_: Request) -> Response:
    return Response(b"", media_type="text/plain")


app = Starlette(routes=[Route("/callbacks/{vendor}/{tenant}", constant, methods=["GET", "POST"])])
