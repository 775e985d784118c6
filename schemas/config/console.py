"""`[console]`: the operations console's address and who may log in (docs/console.md).

Each person has a name (what the audit trail records), a role (`viewer` reads, `operator` also
acts) and a token, from the file or, better, from `ORGSTREAM_CONSOLE_USER_<NAME>_TOKEN`. With no
users the console refuses to start: a page that shows the directory needs a login.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from schemas.config.fields import integer, optional_text, refuse_placeholder, reject_unknown, text
from schemas.config.model import (
    ConfigError,
    ConsoleRole,
    ConsoleSettings,
    ConsoleUser,
    Secret,
)

ROLES: Final[tuple[ConsoleRole, ...]] = ("viewer", "operator")
MIN_TOKEN_LENGTH: Final = 16
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def console_settings(t: Mapping[str, Any], environ: Mapping[str, str]) -> ConsoleSettings:
    d = ConsoleSettings()
    reject_unknown(
        t,
        "console",
        {
            "host",
            "port",
            "session_minutes",
            "secure_cookies",
            "sample_seconds",
            "worker_metrics",
            "users",
        },
    )
    secure = t.get("secure_cookies", d.secure_cookies)
    if not isinstance(secure, bool):
        raise ConfigError("console.secure_cookies: must be true or false")
    metrics = t.get("worker_metrics", [])
    if not isinstance(metrics, list) or not all(
        isinstance(u, str) and u.startswith(("http://", "https://")) for u in metrics
    ):
        raise ConfigError("console.worker_metrics: a list of http(s) URLs of workers' /metrics")
    origin = (optional_text(t, "console", "public_origin") or "").rstrip("/")
    if origin and not re.fullmatch(r"https?://[^/\s]+", origin):
        raise ConfigError("console.public_origin: scheme and host only, as https://console.example")
    users_raw = t.get("users", [])
    if not isinstance(users_raw, list):
        raise ConfigError("console.users: must be an array of tables ([[console.users]])")
    users = tuple(_user(u, f"console.users[{i}]", environ) for i, u in enumerate(users_raw))
    names = [u.name for u in users]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"console.users: {name!r} is listed twice")
    tokens = [u.token for u in users]
    if len(set(tokens)) != len(tokens):
        raise ConfigError("console.users: two users share a token; each person needs their own")
    return ConsoleSettings(
        host=text(t, "console", "host", d.host),
        port=integer(t, "console", "port", d.port, 0, 65535),
        session_minutes=integer(t, "console", "session_minutes", d.session_minutes, 1, 10_080),
        secure_cookies=secure,
        worker_metrics=tuple(metrics),
        public_origin=origin,
        sample_seconds=integer(t, "console", "sample_seconds", d.sample_seconds, 1, 3600),
        users=users,
    )


def _user(u: object, where: str, environ: Mapping[str, str]) -> ConsoleUser:
    if not isinstance(u, dict):
        raise ConfigError(f"{where}: must be a table")
    reject_unknown(u, where, {"name", "role", "token"})
    name = text(u, where, "name", None)
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: letters, digits, '.', '_' and '-', at most 64")
    role = text(u, where, "role", "viewer")
    if role not in ROLES:
        raise ConfigError(f'{where}.role: "viewer" or "operator"')
    env_key = f"ORGSTREAM_CONSOLE_USER_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}_TOKEN"
    token = environ.get(env_key) or u.get("token")
    if not isinstance(token, str) or not token:
        raise ConfigError(f"{where}.token: required (or {env_key} in the environment)")
    refuse_placeholder(token, f"{where}.token")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{where}.token: at least {MIN_TOKEN_LENGTH} characters")
    return ConsoleUser(name, "operator" if role == "operator" else "viewer", Secret(token))
