"""What can go wrong while applying an event, sorted by what the consumer loop does about it.

ApplyError
├── RetryLater      transient: the target or the vendor is unavailable, throttling, timing out;
│   │               the loop backs off and tries the same event again a few times, then parks
│   │               it (workers/parking.py) and re-drives it later
│   ├── ScimUnavailable
│   │   └── TargetQuarantined   the tenant's target is paused: parked at once, no retries
│   ├── VendorUnavailable
│   └── DependencyMissing       a department the event needs is not there yet
├── Held            the mass-deletion guard holds this deletion until approved (parked, held)
└── DeadLetter      permanent: retrying cannot help (bad data, schema, unknown tenant);
    │               the event goes to the DLQ topic with this error, then the offset moves
    ├── ScimRejected      4xx from the SCIM target, with status and scimType
    └── VendorRejected    vendor API errcode we cannot recover from
"""

from __future__ import annotations


class ApplyError(Exception):
    """Base of every apply failure; `str()` is the detail recorded with the event."""


class RetryLater(ApplyError):
    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ScimUnavailable(RetryLater):
    pass


class TargetQuarantined(ScimUnavailable):
    pass


class VendorUnavailable(RetryLater):
    pass


class DependencyMissing(RetryLater):
    pass


class Held(ApplyError):
    pass


class DeadLetter(ApplyError):
    pass


class ScimRejected(DeadLetter):
    def __init__(self, status: int, scim_type: str | None, detail: str) -> None:
        super().__init__(f"SCIM {status} {scim_type or ''}: {detail}".replace("  ", " "))
        self.status = status
        self.scim_type = scim_type


class VendorRejected(DeadLetter):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"vendor errcode {errcode}: {errmsg}")
        self.errcode = errcode
