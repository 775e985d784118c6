"""HTTP to a vendor API, the parts every vendor shares: the tenant's forward proxy, its call
rate, transport failures and throttling mapped to `VendorUnavailable`, JSON answers.

One `VendorHttp` per tenant: the rate limiter and the backoff after throttling hold back only
that tenant's calls, never another tenant's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson

from workers import attempts, metrics
from workers.errors import VendorRejected, VendorUnavailable

_THROTTLE_RETRIES: Final = 3
# Vendor calls a directory walk keeps in flight; the tenant's rate limiter paces them.
WALK_CONCURRENCY: Final = 16
_BASE_BACKOFF: Final = 0.5


class Throttled(VendorUnavailable):
    """The vendor said "too many calls" (HTTP 429 or a rate-limit errcode)."""


class RateLimiter:
    """Spaces calls at most `qps` per second (a token bucket holding one second of calls)."""

    def __init__(self, qps: float) -> None:
        self._interval = 1.0 / qps
        self._capacity = max(1.0, qps)
        self._tokens = self._capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                elapsed = now - self._updated
                self._tokens = min(self._capacity, self._tokens + elapsed / self._interval)
                self._updated = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) * self._interval)


class VendorHttp:
    def __init__(
        self,
        vendor: str,
        api_base: str,
        proxy: str | None,
        timeout: float,
        qps: float,
        transport: httpx.AsyncBaseTransport | None = None,
        code_field: str = "errcode",
        code_required: bool = False,
        retries: int = _THROTTLE_RETRIES,
    ) -> None:
        """`retries`: how often throttling is retried here before it surfaces."""
        self.vendor = vendor
        self._retries = retries
        # Where an answer says how the call went: WeCom's and DingTalk's `errcode`, Feishu's `code`.
        self.code_field = code_field
        # Feishu answers every call with a code: one without (a proxy's page, say) is no answer.
        self._missing_code = -1 if code_required else 0
        self._http = httpx.AsyncClient(
            base_url=api_base, proxy=proxy, timeout=timeout, transport=transport
        )
        self._limiter = RateLimiter(qps)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
        throttle_codes: frozenset[int] = frozenset(),
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One API call; throttling is retried here with jittered backoff a few times, then
        surfaces as `Throttled` so the event is retried later."""
        for attempt in range(self._retries + 1):
            try:
                data = await self._once(method, path, params, body, headers)
                errcode = self.errcode(data)
                if errcode in throttle_codes:
                    raise Throttled(f"{self.vendor} {path} errcode {errcode} (rate limited)")
                return data
            except Throttled as exc:
                if attempt == self._retries:
                    raise
                wait = exc.retry_after or _backoff(attempt)
                attempts.note(f"{exc}; retried in {wait:.1f} s")
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def errcode(self, data: Mapping[str, Any]) -> int:
        try:
            return int(data.get(self.code_field, self._missing_code))
        except (TypeError, ValueError):
            return -1  # an answer that names no code of a known form: try again later

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Mapping[str, Any] | None,
        extra_headers: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        await self._limiter.acquire()
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        headers |= extra_headers or {}
        try:
            response = await self._http.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            metrics.VENDOR_CALLS.labels(self.vendor, "transport").inc()
            raise VendorUnavailable(f"{self.vendor} {path}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            metrics.VENDOR_CALLS.labels(self.vendor, f"http_{response.status_code}").inc()
        if response.status_code == 429:
            # Feishu's gateway says when its window reopens in x-ogw-ratelimit-reset.
            wait = response.headers.get("Retry-After") or response.headers.get(
                "x-ogw-ratelimit-reset"
            )
            raise Throttled(f"{self.vendor} {path}: HTTP 429", _retry_after(wait))
        if response.status_code >= 500:
            raise VendorUnavailable(f"{self.vendor} {path}: HTTP {response.status_code}")
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            # DingTalk answers an IP ban with an HTML page (docs/vendors.md §2.6).
            raise VendorUnavailable(f"{self.vendor} {path}: answer is not JSON") from exc
        if not isinstance(data, dict):
            raise VendorUnavailable(f"{self.vendor} {path}: answer is not a JSON object")
        if response.status_code == 200:
            metrics.VENDOR_CALLS.labels(self.vendor, str(self.errcode(data))).inc()
        return data


def _backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s ... each stretched by up to half at random, so tenants do not align."""
    stretch = random.uniform(1.0, 1.5)  # noqa: S311 - jitter, not crypto
    return _BASE_BACKOFF * float(2**attempt) * stretch


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value), 60.0)
    return None


@dataclass(frozen=True)
class ErrorCodes:
    """How one vendor's errcodes sort into what the client does about them."""

    token: frozenset[int]  # renew the token once and call again
    throttle: frozenset[int]  # back off and call again (`VendorHttp.call`)
    busy: frozenset[int]  # retry the event later


async def call_with_token(
    http: VendorHttp,
    token: AccessToken,
    codes: ErrorCodes,
    method: str,
    path: str,
    params: Mapping[str, str],
    body: Mapping[str, Any] | None,
    not_found: int | frozenset[int],
    bearer: bool = False,
) -> dict[str, Any] | None:
    """An authenticated call: the answer, or `None` when the vendor says `not_found` (one code
    or several). The token goes in the query (`access_token`), or as a bearer header. A token
    error renews the token once; a busy errcode is `VendorUnavailable`, any other
    `VendorRejected`."""
    gone = not_found if isinstance(not_found, frozenset) else frozenset({not_found})
    stale: str | None = None
    for _ in range(2):
        current = await token.get(stale)
        if bearer:
            headers, query = {"Authorization": f"Bearer {current}"}, dict(params)
        else:
            headers, query = {}, {**params, "access_token": current}
        data = await http.call(method, path, query, body, codes.throttle, headers)
        errcode = http.errcode(data)
        if errcode == 0:
            return data
        if errcode in gone:
            return None
        if errcode in codes.token and stale is None:
            attempts.note(f"{http.vendor} {path} errcode {errcode}: token renewed")
            stale = current
            continue
        if errcode in codes.busy:
            raise VendorUnavailable(f"{http.vendor} {path} errcode {errcode}")
        raise VendorRejected(errcode, str(data.get("errmsg") or data.get("msg") or ""))
    raise VendorRejected(errcode, "access token refused twice")


class AccessToken:
    """A vendor access token, fetched once for all concurrent callers and renewed five minutes
    before the vendor says it expires (or at once when a call reports it invalid)."""

    _MARGIN: Final = 300.0

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> None:
        self._fetch = fetch
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def get(self, stale: str | None = None) -> str:
        """The current token; pass the one a call just refused as `stale` to renew it."""
        async with self._lock:
            now = time.monotonic()
            if self._token and self._token[0] != stale and now < self._token[1]:
                return self._token[0]
            token, expires_in = await self._fetch()
            self._token = (token, now + max(60.0, expires_in - self._MARGIN))
            return token
