"""What happened on the way to an outcome: retries, token refreshes, throttling.

The consumer opens one `Attempts` per event (`recording()`); the vendor and SCIM clients note
what they retried with `note()`, wherever they are in the call stack (a context variable, so no
client needs to know about events). The notes go into the sync history with the outcome.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Attempts:
    notes: list[str] = field(default_factory=list)

    @property
    def retries(self) -> int:
        return len(self.notes)


_current: contextvars.ContextVar[Attempts | None] = contextvars.ContextVar(
    "orgstream_attempts", default=None
)


@contextlib.contextmanager
def recording(attempts: Attempts) -> Iterator[Attempts]:
    token = _current.set(attempts)
    try:
        yield attempts
    finally:
        _current.reset(token)


def note(text: str) -> None:
    """Record one retried step for the event being applied (a no-op outside one)."""
    attempts = _current.get()
    if attempts is not None:
        attempts.notes.append(text)
