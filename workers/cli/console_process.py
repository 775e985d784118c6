"""`orgstream console`: the operations console on `console.host:console.port`."""

from __future__ import annotations

import uvicorn

from schemas.config import ConfigError, Settings
from workers.console.app import create_console_app


def console_server(settings: Settings) -> uvicorn.Server:
    console = settings.console
    if not console.users:
        raise ConfigError(
            "console.users: nobody may log in; add [[console.users]] with a name, a role and a "
            "token (docs/console.md)"
        )
    config = uvicorn.Config(
        create_console_app(settings),
        host=console.host,
        port=console.port,
        log_level="warning",
        access_log=False,  # ours logs the path alone, never a query string or a cookie
    )
    return uvicorn.Server(config)


async def run_console(settings: Settings) -> None:
    await console_server(settings).serve()
