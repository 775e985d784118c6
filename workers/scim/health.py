"""Is a SCIM target fit to be written to? A circuit breaker per target.

The target is quarantined at once when it refuses our credentials (401, 403), and when most of
its recent calls failed (5xx, timeouts, resets; 429 is the target pacing us, not failing). While
quarantined nobody calls it: events for it are parked instead of hammering it, and the worker
probes it now and then; the first probe that succeeds resumes it.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import structlog

from workers import metrics

_WINDOW: Final = 20  # the last calls looked at
_MIN_CALLS: Final = 10  # fewer than this is not "most calls"
_FAILING_SHARE: Final = 0.5
log = structlog.get_logger("orgstream.worker")


class TargetHealth:
    def __init__(self, target: str) -> None:
        self._target = target
        self._recent: deque[bool] = deque(maxlen=_WINDOW)  # True: the call failed
        self.reason: str | None = None  # why it is quarantined; None while healthy

    @property
    def quarantined(self) -> bool:
        return self.reason is not None

    def succeeded(self) -> None:
        self._recent.append(False)

    def failed(self, why: str) -> None:
        self._recent.append(True)
        failures = sum(self._recent)
        if len(self._recent) >= _MIN_CALLS and failures > _FAILING_SHARE * len(self._recent):
            self.quarantine(f"{failures} of the last {len(self._recent)} calls failed ({why})")

    def quarantine(self, reason: str) -> None:
        if self.reason is None:
            log.error("target_quarantined", target=self._target, reason=reason)
            metrics.TARGET_QUARANTINED.labels(self._target).set(1)
        self.reason = reason

    def resume(self) -> None:
        if self.reason is not None:
            log.warning("target_resumed", target=self._target, was=self.reason)
            metrics.TARGET_QUARANTINED.labels(self._target).set(0)
        self.reason = None
        self._recent.clear()
