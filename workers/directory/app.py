"""`orgstream directory`: each tenant's mirrored directory as a read-only SCIM 2.0 service
provider at `/scim/v2/{tenant}/` (docs/directory-server.md).

Every request under a tenant is authenticated first, with the tenant's `directory_token`
compared in constant time; an unknown tenant is answered exactly like a wrong token, so the
URL space tells nobody which tenants exist. Writes are refused with 405 while provisioning is
off. Nothing a client sends can cause a 5xx: bad filters and parameters are 400s naming what is
wrong.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
import structlog
from prometheus_client import Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from schemas.config import Settings
from workers.directory.discovery import resource_types, schemas, service_provider_config
from workers.directory.filters import FilterError
from workers.directory.listing import QueryError, project, query_of
from workers.directory.reader import DirectoryReader
from workers.directory.responses import LIST_SCHEMA, scim_error, scim_json
from workers.directory.writes import WriteRequest, Writes
from workers.store.directory_rows import GROUP, USER

log = structlog.get_logger("orgstream.directory")

REQUESTS = Counter(
    "orgstream_directory_requests",
    "Requests to the directory server by tenant, endpoint and status.",
    ["tenant", "endpoint", "status"],
)
LATENCY = Histogram(
    "orgstream_directory_request_seconds",
    "Time to answer a directory request, by endpoint.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

_KINDS: Final = {"Users": USER, "Groups": GROUP}
_MAX_BODY: Final = 1_048_576
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="orgstream directory"'}
_BEARER: Final = re.compile(r"Bearer\s+(\S+)", re.IGNORECASE)
_ID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Handler = Callable[[Request, str, str, list[str]], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class _Caller:
    """Who asks, under which tenant: what they may see and where their resources live."""

    tenant: str
    base: str
    writable: bool  # the tenant takes writes: its schemas say what the vendor holds
    needs_mobile: bool
    idp_view: bool  # the provisioning token: the IdP sees what it can write


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def create_directory_app(
    settings: Settings, reader: DirectoryReader, writes: Mapping[str, Writes] | None = None
) -> Starlette:
    """`writes`: the provisioning path of each tenant that has it on."""
    writers = dict(writes or {})
    # Compared against when the tenant is unknown or has no such token, so all cost the same.
    stand_in = secrets.token_bytes(32)
    tokens = {
        t.id: t.directory_token.reveal().encode() if t.directory_token else stand_in
        for t in settings.tenants
        if t.directory_token or t.provisioning
    }
    needs_mobile = {t.id for t in settings.tenants if t.vendor == "dingtalk"}
    write_tokens = {
        t.id: t.provisioning.token.reveal().encode()
        for t in settings.tenants
        if t.provisioning and t.id in writers
    }
    # A tenant that pulls from a SCIM server takes no pushes: two masters would undo each other.
    pulling = {t.id for t in settings.tenants if t.provisioning and t.provisioning.source_url}

    async def scim(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        parts = [p for p in request.path_params["rest"].split("/") if p]
        endpoint = _endpoint(parts)
        started = time.perf_counter()
        known = tenant in tokens
        reads = _authorized(request, tokens.get(tenant, stand_in))
        may_write = _authorized(request, write_tokens.get(tenant, stand_in))
        if not (reads or may_write) or not known:
            response = scim_error(401, "a valid bearer token for this tenant is required",
                                  headers=_CHALLENGE)  # fmt: skip
        else:
            base = f"{str(request.base_url).rstrip('/')}/scim/v2/{tenant}"
            writer = writers.get(tenant) if may_write else None
            try:
                if request.method not in ("GET", "HEAD") and _is_resource(parts):
                    response = await _write(
                        request, writer, tenant in writers, parts, base, tenant in pulling
                    )
                else:
                    caller = _Caller(tenant, base, tenant in writers, tenant in needs_mobile,
                                     idp_view=writer is not None)  # fmt: skip
                    response = await _route(request, reader, caller, parts)
            except _Refused as refused:
                response = refused.response
        elapsed = time.perf_counter() - started
        REQUESTS.labels(tenant if known else "-", endpoint, str(response.status_code)).inc()
        LATENCY.labels(endpoint).observe(elapsed)
        log.info("directory_request", method=request.method, path=request.url.path,
                 status=response.status_code, ms=round(elapsed * 1000, 2),
                 tenant=tenant if known else None)  # fmt: skip
        return response

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/scim/v2/{tenant}", scim, methods=methods),
            Route("/scim/v2/{tenant}/{rest:path}", scim, methods=methods),
        ],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )


async def _route(
    request: Request, reader: DirectoryReader, caller: _Caller, parts: list[str]
) -> Response:
    method, head = request.method, parts[0] if parts else ""
    if head in ("ServiceProviderConfig", "ResourceTypes", "Schemas"):
        _only(method, "GET")
        return _discovery(head, parts[1:], caller, reader.max_results)
    if head == ".search" and len(parts) == 1:
        _only(method, "POST")
        return await _root_search(request, reader, caller)
    kind = _KINDS.get(head)
    if kind is None or len(parts) > 2:
        return scim_error(404, f"no such endpoint: /{'/'.join(parts)}")
    if len(parts) == 2 and parts[1] == ".search":
        _only(method, "POST")
        return await _list(reader, caller, kind, await _search_body(request))
    if method != "GET":
        return scim_error(405, "this directory is read-only: provisioning is off for the tenant")
    if len(parts) == 1:
        return await _list(reader, caller, kind, dict(request.query_params))
    found = (
        await reader.get(caller.tenant, kind, parts[1], caller.base, caller.idp_view)
        if _ID.fullmatch(parts[1])
        else None
    )
    if found is None:
        return scim_error(404, f"{kind} {parts[1]} not found")
    tags = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    if found.version in tags or "*" in tags:
        return Response(status_code=304, headers={"ETag": found.version})
    params = dict(request.query_params)
    try:
        resource = project(found.resource, query_of(params))
    except QueryError as exc:
        return scim_error(400, str(exc), "invalidValue")
    return scim_json(resource, headers={"ETag": found.version, "Location": _location(resource)})


def _is_resource(parts: list[str]) -> bool:
    """A write to Users or Groups (or one of them), not a search."""
    return bool(parts) and parts[0] in _KINDS and len(parts) <= 2 and parts[-1] != ".search"


async def _write(
    request: Request,
    writer: Writes | None,
    provisioning: bool,
    parts: list[str],
    base: str,
    pulling: bool,
) -> Response:
    if not provisioning:
        return scim_error(405, "this directory is read-only: provisioning is off for the tenant")
    if pulling:
        return scim_error(405, "this tenant pulls from its provisioning_source; it takes no pushes")
    if writer is None:
        return scim_error(403, "this token only reads; writes need the tenant's provisioning_token")
    scim_id = parts[1] if len(parts) == 2 else None
    if scim_id is not None and not _ID.fullmatch(scim_id):
        return scim_error(404, f"{parts[0]} {scim_id} not found")
    body = {} if request.method == "DELETE" else await _json_body(request)
    return await writer.write(WriteRequest(request.method, parts[0], scim_id, body, base))


async def _list(
    reader: DirectoryReader, caller: _Caller, kind: str, params: dict[str, Any]
) -> Response:
    try:
        page = await reader.page(
            caller.tenant, kind, query_of(params), caller.base, idp_view=caller.idp_view
        )
        return scim_json(page)
    except FilterError as exc:
        return scim_error(400, f"filter: {exc}", "invalidFilter")
    except QueryError as exc:
        return scim_error(400, str(exc), "invalidValue")


async def _root_search(request: Request, reader: DirectoryReader, caller: _Caller) -> Response:
    """`POST /.search`: Users, then Groups. An attribute only one of them has selects none
    of the other (RFC 7644 §3.4.2.1); one neither has is a 400."""
    params = await _search_body(request)
    try:
        query = query_of(params)
    except QueryError as exc:
        return scim_error(400, str(exc), "invalidValue")
    wanted = reader.max_results if query.count is None else min(query.count, reader.max_results)
    skip, total = query.start_index - 1, 0
    resources: list[dict[str, Any]] = []
    errors: list[Exception] = []
    for kind in (USER, GROUP):
        try:
            counted = await reader.page(
                caller.tenant, kind, query_of({**params, "count": 0}), caller.base, lenient=True
            )
        except (FilterError, QueryError) as exc:
            errors.append(exc)
            continue
        found = int(counted["totalResults"])
        total += found
        take = wanted - len(resources)
        if take > 0 and skip < found:
            page = query_of({**params, "startIndex": skip + 1, "count": take})
            found_page = await reader.page(
                caller.tenant, kind, page, caller.base, lenient=True, idp_view=caller.idp_view
            )
            resources += found_page["Resources"]
        skip = max(0, skip - found)
    if len(errors) == 2:
        return scim_error(400, f"filter: {errors[0]}", "invalidFilter")
    return scim_json(
        {
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": query.start_index,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }
    )


def _discovery(head: str, rest: list[str], caller: _Caller, max_results: int) -> Response:
    base = caller.base
    if head == "ServiceProviderConfig":
        if rest:
            return scim_error(404, "no such endpoint")
        return scim_json(service_provider_config(base, max_results, caller.writable))
    documents = (
        schemas(base, caller.writable, caller.needs_mobile, caller.idp_view)
        if head == "Schemas"
        else resource_types(base, caller.idp_view)
    )
    if len(rest) == 1:
        match = next((d for d in documents if d["id"] == rest[0]), None)
        return scim_json(match) if match else scim_error(404, f"{head}/{rest[0]} not found")
    if rest:
        return scim_error(404, "no such endpoint")
    return scim_json(
        {
            "schemas": [LIST_SCHEMA],
            "totalResults": len(documents),
            "startIndex": 1,
            "itemsPerPage": len(documents),
            "Resources": documents,
        }
    )


async def _search_body(request: Request) -> dict[str, Any]:
    return await _json_body(request)


async def _json_body(request: Request) -> dict[str, Any]:
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_BODY:
                raise _Refused(scim_error(413, f"a request body is at most {_MAX_BODY} bytes"))
    except ClientDisconnect as exc:  # nobody is left to answer; not our error either
        raise _Refused(scim_error(400, "the request body did not arrive")) from exc
    try:
        parsed = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as exc:
        raise _Refused(scim_error(400, "the body is not JSON", "invalidSyntax")) from exc
    if not isinstance(parsed, dict):
        raise _Refused(scim_error(400, "the body must be a JSON object", "invalidSyntax"))
    return parsed


def _location(resource: dict[str, Any]) -> str:
    meta = resource.get("meta")
    return str(meta.get("location", "")) if isinstance(meta, dict) else ""


def _only(method: str, allowed: str) -> None:
    if method != allowed:
        raise _Refused(scim_error(405, f"only {allowed} is allowed here"))


def _authorized(request: Request, expected: bytes) -> bool:
    match = _BEARER.fullmatch(request.headers.get("authorization", "").strip())
    given = match.group(1).encode() if match else b""
    return hmac.compare_digest(given, expected)


def _endpoint(parts: list[str]) -> str:
    """A label for metrics: the route's shape, never an id from the URL."""
    if not parts:
        return "root"
    head = parts[0]
    if head not in ("Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas",
                    ".search"):  # fmt: skip
        return "unknown"
    if len(parts) == 1:
        return head
    return f"{head}/.search" if parts[1] == ".search" else f"{head}/{{id}}"


async def _not_found(request: Request, exc: Exception) -> Response:
    return scim_error(404, "no such endpoint")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return scim_error(405, "method not allowed")
