"""Who is logged in: a session per login, kept in the console's memory (a restart logs everyone
out), found by a random cookie that never holds the token itself. Each session has its own CSRF
token, which every form that acts must send back."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from schemas.config.model import ConsoleRole, ConsoleUser


@dataclass(frozen=True, slots=True)
class Session:
    who: str
    role: ConsoleRole
    csrf: str
    expires: float

    @property
    def may_act(self) -> bool:
        return self.role == "operator"

    def csrf_matches(self, sent: object) -> bool:
        return isinstance(sent, str) and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, users: tuple[ConsoleUser, ...], minutes: int) -> None:
        self._users = users
        self._seconds = minutes * 60.0
        self._open: dict[str, Session] = {}

    def log_in(self, token: str) -> tuple[str, Session] | None:
        """A new session for the user whose token this is; every token is compared, in
        constant time, so the answer takes as long whoever it is."""
        given = token.encode()
        found = None
        for user in self._users:
            if hmac.compare_digest(given, user.token.reveal().encode()):
                found = user
        if found is None:
            return None
        self._forget_expired()
        key = secrets.token_urlsafe(32)
        session = Session(found.name, found.role, secrets.token_urlsafe(32),
                          time.time() + self._seconds)  # fmt: skip
        self._open[key] = session
        return key, session

    def find(self, key: str | None) -> Session | None:
        session = self._open.get(key) if key else None
        if session is None or session.expires < time.time():
            return None
        return session

    def log_out(self, key: str | None) -> None:
        if key:
            self._open.pop(key, None)

    def _forget_expired(self) -> None:
        now = time.time()
        for key in [k for k, s in self._open.items() if s.expires < now]:
            del self._open[key]
