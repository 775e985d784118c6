"""The receiver's Starlette app: routes, lifespan of the publisher, one handler for rejections.

No request can make it answer 5xx: a rejection is its 4xx, a client that goes away is no
error, a body that does not arrive in time is a 408. Only the broker failing to ack (503, so
the vendor retries) and a bug of ours (500) are 5xx. (Slow headers are the TLS proxy's to
cut off, see docs/event-path.md: uvicorn has no deadline for them.) Its metrics are served on a
port of their own (`receiver.metrics_port`), never on the one the vendors reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import structlog
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from receiver.dedupe import RecentIds
from receiver.metrics import ReceiverMetrics
from receiver.publisher import EventPublisher, KafkaEventPublisher, PublishFailed
from schemas.config import Settings, TenantSettings
from schemas.topics import new_traceparent
from schemas.vendors import dingtalk, feishu, wecom
from schemas.vendors.callback import Opened, parse_query
from schemas.vendors.errors import BodyTimeout, BodyTooLarge, CallbackError, UnknownTenant
from schemas.vendors.numbers import ascii_int

Clock = Callable[[], float]
log = structlog.get_logger("orgstream.receiver")


def create_app(
    settings: Settings, publisher: EventPublisher | None = None, clock: Clock = time.time
) -> Starlette:
    if publisher is None:
        publisher = KafkaEventPublisher(
            settings.kafka.bootstrap_servers,
            settings.kafka.topic,
            settings.receiver.publish_timeout_seconds,
        )
    handler = _CallbackHandler(settings, publisher, clock)
    _warn_of_unencrypted_tenants(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        ready = await publisher.ready()
        return PlainTextResponse("ok" if ready else "broker unreachable", 200 if ready else 503)

    routes = [
        Route("/callbacks/wecom/{tenant}", handler.wecom, methods=["GET", "POST"]),
        Route("/callbacks/dingtalk/{tenant}", handler.dingtalk, methods=["POST"]),
        Route("/callbacks/feishu/{tenant}", handler.feishu, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.publisher = publisher
    app.state.metrics = handler.metrics
    return app


def _warn_of_unencrypted_tenants(settings: Settings) -> None:
    for tenant in settings.tenants:
        if tenant.feishu is not None and tenant.feishu.encrypt_key is None:
            log.warning(
                "feishu_events_unencrypted",
                tenant=tenant.id,
                hint="without an encrypt key only the verification token authenticates "
                "events: set one in the app's console and as encrypt_key",
            )


class _CallbackHandler:
    def __init__(self, settings: Settings, publisher: EventPublisher, clock: Clock) -> None:
        self._settings = settings
        self._publisher = publisher
        self._clock = clock
        skew = settings.receiver.timestamp_skew_seconds
        self._recent = RecentIds(ttl_seconds=max(3600, 4 * skew))
        self.metrics = ReceiverMetrics.create()

    async def wecom(self, request: Request) -> Response:
        return await self._guarded(request, "wecom", self._wecom)

    async def dingtalk(self, request: Request) -> Response:
        return await self._guarded(request, "dingtalk", self._dingtalk)

    async def feishu(self, request: Request) -> Response:
        return await self._guarded(request, "feishu", self._feishu)

    async def _guarded(
        self,
        request: Request,
        vendor: str,
        handle: Callable[[Request, TenantSettings], Awaitable[Response]],
    ) -> Response:
        """Resolve the tenant and run the vendor's handler; any rejection becomes its 4xx."""
        tenant_id = request.path_params["tenant"]
        try:
            return await handle(request, self._tenant(vendor, tenant_id))
        except CallbackError as exc:
            return self._reject(vendor, tenant_id, exc)
        except ClientDisconnect:
            # The caller went away mid-body: nobody to answer, and not our failure.
            log.info("client_disconnected", vendor=vendor, tenant=self._label(tenant_id))
            self._count(vendor, self._label(tenant_id), "disconnected")
            return Response(status_code=400)
        except Exception as exc:  # noqa: BLE001 - a bug answers 500 (the vendor retries) and counts
            # Type and message only: a traceback's frames could hold decrypted payloads.
            log.error("callback_failed", vendor=vendor, error=f"{type(exc).__name__}: {exc}")
            self._count(vendor, self._label(tenant_id), "internal_error")
            return JSONResponse({"error": "internal_error"}, status_code=500)

    async def _wecom(self, request: Request, tenant: TenantSettings) -> Response:
        params = parse_query(request.scope["query_string"].decode("latin-1"))
        skew, now = self._settings.receiver.timestamp_skew_seconds, self._clock()
        if request.method == "GET":
            echo = wecom.open_url_verification(tenant, params, now, skew)
            self._count("wecom", tenant.id, "handshake")
            return Response(echo, media_type="text/plain")
        opened = wecom.open_callback(tenant, params, await self._body(request), now, skew)
        refused = await self._publish(request, "wecom", tenant, opened)
        return refused or Response(b"")  # WeCom: an empty 200 stops retries

    async def _dingtalk(self, request: Request, tenant: TenantSettings) -> Response:
        params = parse_query(request.scope["query_string"].decode("latin-1"))
        skew, now = self._settings.receiver.timestamp_skew_seconds, self._clock()
        opened = dingtalk.open_callback(tenant, params, await self._body(request), now, skew)
        refused = await self._publish(
            request, "dingtalk", tenant, opened, dingtalk.PUBLISH_DEADLINE_SECONDS
        )
        # DingTalk: only the encrypted `success` counts as delivered, handshake included
        # (docs/vendors.md §2.3).
        if refused is not None:
            return refused
        reply = dingtalk.success_reply(tenant, self._clock(), opened.key)
        return Response(orjson.dumps(reply), media_type="application/json")

    async def _feishu(self, request: Request, tenant: TenantSettings) -> Response:
        skew, now = self._settings.receiver.timestamp_skew_seconds, self._clock()
        opened = feishu.open_callback(tenant, request.headers, await self._body(request), now, skew)
        if opened.challenge is not None:
            self._count("feishu", tenant.id, "handshake")
            return JSONResponse({"challenge": opened.challenge})
        refused = await self._publish(
            request, "feishu", tenant, opened, feishu.PUBLISH_DEADLINE_SECONDS
        )
        return refused or Response(feishu.SUCCESS, media_type="application/json")

    async def _publish(
        self,
        request: Request,
        vendor: str,
        tenant: TenantSettings,
        opened: Opened,
        deadline: float | None = None,
    ) -> Response | None:
        """Publish what a verified callback carries; a response only when the broker refused."""
        if opened.handshake:
            self._count(vendor, tenant.id, "handshake")
            return None
        if opened.ignored_reason:
            log.info(
                "callback_ignored", vendor=vendor, tenant=tenant.id, reason=opened.ignored_reason
            )
            self._count(vendor, tenant.id, "ignored")
            return None
        fresh = [e for e in opened.events if e.event_id not in self._recent]
        if not fresh:
            log.info(
                "callback_duplicate",
                vendor=vendor,
                tenant=tenant.id,
                event_ids=[e.event_id for e in opened.events],
            )
            self._count(vendor, tenant.id, "duplicate")
            return None
        started = time.perf_counter()
        traceparent = request.headers.get("traceparent") or new_traceparent()
        try:
            if deadline is None:
                await self._publisher.publish(fresh, traceparent)
            else:
                async with asyncio.timeout(deadline):
                    await self._publisher.publish(fresh, traceparent)
        except (PublishFailed, TimeoutError) as exc:
            log.error(
                "publish_failed", vendor=vendor, tenant=tenant.id, error=str(exc) or "deadline"
            )
            self._count(vendor, tenant.id, "unavailable")
            return JSONResponse({"error": "broker_unavailable"}, status_code=503)
        self.metrics.publish_seconds.labels(vendor).observe(time.perf_counter() - started)
        self._recent.add((e.event_id for e in fresh), self._clock())
        log.debug(  # one line per callback costs more than verifying it: metrics count them
            "callback_accepted",
            vendor=vendor,
            tenant=tenant.id,
            events=[(e.entity, e.entity_id, e.change) for e in fresh],
        )
        self._count(vendor, tenant.id, "accepted")
        return None

    def _tenant(self, vendor: str, tenant_id: str) -> TenantSettings:
        tenant = self._settings.tenant(tenant_id)
        if tenant is None or tenant.vendor != vendor:
            raise UnknownTenant
        return tenant

    async def _body(self, request: Request) -> bytes:
        """Read at most max_body_bytes within the body deadline; refuse before reading when
        Content-Length already says more."""
        receiver = self._settings.receiver
        try:
            declared = ascii_int(request.headers.get("content-length", "0"))
        except ValueError as exc:  # more digits than any body we take
            raise BodyTooLarge from exc
        if declared > receiver.max_body_bytes:
            raise BodyTooLarge
        body = bytearray()
        try:
            async with asyncio.timeout(receiver.body_timeout_seconds):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > receiver.max_body_bytes:
                        raise BodyTooLarge
        except TimeoutError as exc:
            raise BodyTimeout from exc
        return bytes(body)

    def _reject(self, vendor: str, tenant_id: str, exc: CallbackError) -> Response:
        label = self._label(tenant_id)
        # The reason stays in the operator's log; what is served (reply, headers, metrics)
        # names only the public reason, the same for every failure after the signature.
        log.warning(
            "callback_rejected",
            vendor=vendor,
            tenant=label,
            reason=exc.reason,
            status=exc.http_status,
        )
        status, public = (
            feishu.public_refusal(exc)
            if vendor == "feishu"
            else (exc.http_status, exc.public_reason)
        )
        self._count(vendor, label, public)
        # A client too slow to send its body is not kept on the line.
        headers = {"Connection": "close"} if isinstance(exc, BodyTimeout) else None
        return JSONResponse({"error": public}, status_code=status, headers=headers)

    def _label(self, tenant_id: str) -> str:
        """Unknown tenant ids are chosen by the caller: keep them out of metric labels."""
        return tenant_id if self._settings.tenant(tenant_id) is not None else "_unknown"

    def _count(self, vendor: str, tenant: str, outcome: str) -> None:
        self.metrics.count(vendor, tenant, outcome)
