"""What the IdP is told when a write cannot be done: SCIM errors (RFC 7644 §3.12), including
the vendor's errcodes sorted into the SCIM statuses an IdP knows how to act on."""

from __future__ import annotations

from typing import Final

from workers.errors import ApplyError, RetryLater, VendorRejected
from workers.vendors.http import Throttled

# WeCom's and DingTalk's errcodes (docs/vendors.md §1.8, §2.8), which share their numbers.
_TAKEN: Final = frozenset({60102, 60104, 60106, 60107, 60008, 60016})
_INVALID: Final = frozenset(
    {40003, 40035, 60103, 60105, 60112, 60113, 60125, 60129, 60127, 60132, 60009, 60001, 60010}
    | {60002}
)
_NOT_FOUND: Final = frozenset({60111, 60121, 60003, 60004, 46004, 60123})
# DingTalk answers a missing parameter with 40035.
_NOT_EMPTY: Final = frozenset({60005, 60006, 60007})
_NOT_ALLOWED: Final = {
    60020: "the vendor refuses calls from this IP: add orgstream's egress address (or its "
    "proxy's) to the app's trusted IPs",
    48002: "the vendor refuses this write with the configured secret: WeCom writes only with "
    "the contact-sync (通讯录同步) secret",
    60011: "the vendor refuses this write: the app needs the permission to write contacts "
    "(DingTalk: contact-maintenance, 通讯录管理)",
}
# The vendor refuses orgstream's own credentials: nothing the IdP sent is wrong.
_CREDENTIALS: Final = frozenset({40001, 40013, 40014, 42001, 40089, 33001})
_THROTTLED: Final = frozenset({45009, 45033, 90018, 90002, 90019, 6000})


class ProvisionError(Exception):
    """A SCIM error to answer with; `str()` is its detail."""

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.retry_after = retry_after


def invalid(attribute: str, why: str) -> ProvisionError:
    return ProvisionError(400, f"{attribute}: {why}", "invalidValue")


def from_vendor(error: ApplyError) -> ProvisionError:
    """The vendor's answer as the IdP should see it."""
    if isinstance(error, Throttled):
        return ProvisionError(429, f"the vendor is throttling: {error}", None, _wait(error))
    if isinstance(error, RetryLater):
        return ProvisionError(503, f"the vendor cannot answer now: {error}", None, _wait(error))
    if not isinstance(error, VendorRejected):
        return ProvisionError(400, str(error), "invalidValue")
    code, said = error.errcode, str(error)
    if code in _TAKEN:
        return ProvisionError(409, f"already taken at the vendor ({said})", "uniqueness")
    if code in _NOT_FOUND:
        return ProvisionError(404, f"not found at the vendor ({said})")
    if code in _NOT_EMPTY:
        return ProvisionError(409, f"the department is not empty or is the root ({said})")
    if code in _CREDENTIALS:
        return ProvisionError(
            502,
            f"the vendor refuses orgstream's credentials: check the tenant's corp id and "
            f"secret (sync_secret; DingTalk: app_key and app_secret) ({said})",
        )
    if code in _NOT_ALLOWED:
        return ProvisionError(502, f"{_NOT_ALLOWED[code]} ({said})")
    if code in _THROTTLED:
        return ProvisionError(429, f"the vendor is throttling ({said})", None, 1.0)
    if code in _INVALID:
        return ProvisionError(400, f"the vendor refused the value ({said})", "invalidValue")
    return ProvisionError(400, f"the vendor refused the request ({said})", "invalidValue")


def _wait(error: RetryLater) -> float:
    return error.retry_after if error.retry_after is not None else 1.0
