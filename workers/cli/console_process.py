"""`orgstream console`: the operations console on `console.host:console.port`."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from schemas.config import ConfigError, Settings
from workers.console.app import create_console_app


def console_server(settings: Settings, config: Path | None = None) -> uvicorn.Server:
    console = settings.console
    if not console.users:
        raise ConfigError(
            "console.users: nobody may log in; add [[console.users]] with a name, a role and a "
            "token (docs/console.md)"
        )
    served = uvicorn.Config(
        create_console_app(settings, config),
        host=console.host,
        port=console.port,
        log_level="warning",
        access_log=False,  # ours logs the path alone, never a query string or a cookie
    )
    return uvicorn.Server(served)


async def run_console(settings: Settings, config: Path) -> None:
    await console_server(settings, config).serve()
