"""A reverse proxy in front of scim2-server that fails on purpose, the way real targets do.

Everything is forwarded to the real server unless a fault is due: a scripted burst (`burst`),
random bursts of 429 (with Retry-After), 503 and 500 at a chosen rate (`chaos`), or refusing
every call with 401 until `heal()` (expired credentials), or holding the calls that match until
`release()` and then answering them 503 unforwarded (a worker killed while its request was on
the way). Counts what it injected, so a test can show the faults really happened.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# httpx hands over decoded bodies: their length and encoding headers are its to set again.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}
)
_BURSTS = ((429, "1"), (503, "0"), (503, None), (500, None))


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    query: str
    body: bytes
    status: int
    answer: bytes


@dataclass
class FaultyTarget:
    upstream: str  # scim2-server's root, e.g. http://127.0.0.1:8000
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    injected: Counter[int] = field(default_factory=Counter)
    forwarded: int = 0
    methods: Counter[str] = field(default_factory=Counter)  # forwarded requests by method
    recording: bool = False  # keep every forwarded exchange (benchmarks replay them)
    exchanges: list[Exchange] = field(default_factory=list)
    _queue: list[tuple[int, str | None]] = field(default_factory=list)
    _refusing: int | None = None
    _chaos: float = 0.0
    _client: httpx.AsyncClient | None = None
    _holding: tuple[str, str] | None = None  # (method, path fragment) held until release()
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0  # requests held so far

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=_METHODS)])

    def burst(self, status: int, count: int, retry_after: str | None = None) -> None:
        """The next `count` calls get `status`."""
        self._queue.extend([(status, retry_after)] * count)

    def chaos(self, rate: float) -> None:
        """With probability `rate` per call, start a burst of 1 to 6 failures."""
        self._chaos = rate

    def refuse(self, status: int = 401) -> None:
        self._refusing = status

    def hold(self, method: str, path_fragment: str) -> None:
        """Hold every `method` call whose path contains `path_fragment` until `release()`."""
        self._holding = (method, path_fragment)
        self._released.clear()

    def release(self) -> None:
        self._holding = None
        self._released.set()

    def heal(self) -> None:
        self._refusing, self._chaos = None, 0.0
        self._queue.clear()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _handle(self, request: Request) -> Response:
        holding = self._holding
        if holding and request.method == holding[0] and holding[1] in request.url.path:
            self.held += 1
            await self._released.wait()
            return Response("held, never forwarded", status_code=503)
        fault = self._fault()
        if fault is not None:
            status, retry_after = fault
            self.injected[status] += 1
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return Response(f"injected {status}", status_code=status, headers=headers)
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.upstream, timeout=30.0)
        query = request.url.query
        upstream = await self._client.request(
            request.method,
            request.url.path + (f"?{query}" if query else ""),
            content=await request.body(),
            headers={k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP},
        )
        self.forwarded += 1
        self.methods[request.method] += 1
        if self.recording:
            self.exchanges.append(
                Exchange(request.method, request.url.path, query, await request.body(),
                         upstream.status_code, upstream.content)
            )  # fmt: skip
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=headers)

    def _fault(self) -> tuple[int, str | None] | None:
        if self._refusing is not None:
            return self._refusing, None
        if not self._queue and self._chaos and self.rng.random() < self._chaos:
            status, retry_after = self.rng.choice(_BURSTS)
            self.burst(status, self.rng.randint(1, 6), retry_after)
        return self._queue.pop(0) if self._queue else None


_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
