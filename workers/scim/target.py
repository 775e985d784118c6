"""The SCIM target over HTTP: the few calls the applier needs, with errors mapped once.

429/503 honour Retry-After (a 429 holds back every request to the target, in every worker
process, through its `TargetPace`), other 5xx, timeouts and resets back off with jitter a few
times, then surface as `ScimUnavailable` (the consumer retries the whole event later). 401 and
403 are not the event's fault: they quarantine the target (`TargetQuarantined`, see
health.py), as does a run of failures. Other 4xx are data errors: `ScimRejected`, which
dead-letters the event.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx
import orjson

from workers import metrics
from workers.errors import ScimRejected, ScimUnavailable, TargetQuarantined
from workers.scim.health import TargetHealth
from workers.scim.memberships import MembershipBatcher
from workers.scim.pace import TargetPace

CORE_USER: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP: Final = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ORGSTREAM_GROUP: Final = "urn:ietf:params:scim:schemas:extension:orgstream:2.0:Group"
PATCH_OP: Final = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_MEDIA: Final = "application/scim+json"
_ATTEMPTS: Final = 4
_PAGE: Final = 100  # results asked for per page (AWS allows no more), or fewer if the target says
MEMBERS_PER_PATCH: Final = 100  # membership operations per Group PATCH

Resource = dict[str, Any]


def scim_filter(attribute: str, operator: str, value: str) -> str:
    """`attribute op "value"` with the value quoted and escaped (RFC 7644 §3.4.2.2)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{attribute} {operator} "{escaped}"'


def filter_eq(attribute: str, value: str) -> str:
    return scim_filter(attribute, "eq", value)


class ScimTarget:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        pace: TargetPace | None = None,
    ) -> None:
        headers = {"Accept": _MEDIA, "Content-Type": _MEDIA}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._schemas: frozenset[str] | None = None
        self._config: Resource | None = None
        self.health = TargetHealth(base_url)
        self.pace = pace or TargetPace(base_url)
        # Membership adds and removes of concurrent records, one PATCH per Group and window.
        self.memberships = MembershipBatcher(self.patch, MEMBERS_PER_PATCH)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def schema_ids(self) -> frozenset[str]:
        """The schema URNs the target advertises in /Schemas (read once)."""
        if self._schemas is None:
            self._schemas = frozenset(r.get("id", "") for r in await self.schemas())
        return self._schemas

    async def schemas(self) -> list[Resource]:
        """The schema resources of /Schemas, with their attributes."""
        listed = await self._request("GET", "/Schemas")
        resources = listed.get("Resources", [])
        return [r for r in resources if isinstance(r, dict)] if isinstance(resources, list) else []

    async def service_provider_config(self) -> Resource:
        """What the target says it supports (read once): patch, bulk, filter, etag..."""
        if self._config is None:
            self._config = await self._request("GET", "/ServiceProviderConfig")
        return self._config

    async def etags_supported(self) -> bool:
        etag = (await self.service_provider_config()).get("etag") or {}
        return bool(etag.get("supported"))

    async def page_size(self) -> int:
        """Results per query: ours, or the target's `filter.maxResults` if that is smaller."""
        limit = ((await self.service_provider_config()).get("filter") or {}).get("maxResults")
        return min(_PAGE, limit) if isinstance(limit, int) and limit > 0 else _PAGE

    async def probe(self) -> bool:
        """Try a quarantined target with one cheap read that needs our credentials (unlike
        /ServiceProviderConfig, which may be public); resume it if that works."""
        try:
            await self._request(
                "GET", "/Users", params={"count": "1", "attributes": "id"}, probing=True
            )
        except (ScimUnavailable, ScimRejected):
            return False
        self.health.resume()
        return True

    async def get(self, kind: str, resource_id: str) -> Resource:
        excluded = {"excludedAttributes": "members"} if kind == "Groups" else None
        return await self._request("GET", _resource_path(kind, resource_id), params=excluded)

    async def find(
        self, kind: str, scim_filter: str, excluded: str | None = None
    ) -> list[Resource]:
        params = {"filter": scim_filter, "count": str(await self.page_size())}
        if excluded:
            params["excludedAttributes"] = excluded
        listed = await self._request("GET", f"/{kind}", params=params)
        resources: list[Resource] = listed.get("Resources", [])
        return resources

    async def find_all(
        self, kind: str, scim_filter: str, excluded: str | None = None
    ) -> list[Resource]:
        """Every match, page by page (`find` reads only the first page)."""
        params = {"filter": scim_filter}
        if excluded:
            params["excludedAttributes"] = excluded
        return await self._every_page(kind, params)

    async def count(self, kind: str, scim_filter: str) -> int:
        """How many resources match, without reading them (count=0, RFC 7644 §3.4.2.4)."""
        listed = await self._request(
            "GET", f"/{kind}", params={"filter": scim_filter, "count": "0"}
        )
        return int(listed.get("totalResults", 0))

    async def find_one(self, kind: str, scim_filter: str) -> Resource | None:
        # Groups can hold thousands of members; matching never needs them.
        found = await self.find(kind, scim_filter, "members" if kind == "Groups" else None)
        if len(found) > 1:
            ids = ", ".join(r["id"] for r in found)
            raise ScimRejected(409, "uniqueness", f"{scim_filter} matches several: {ids}")
        return found[0] if found else None

    async def list_all(self, kind: str, attributes: str | None = None) -> list[Resource]:
        return await self._every_page(kind, {"attributes": attributes} if attributes else {})

    async def _every_page(self, kind: str, params: Mapping[str, str]) -> list[Resource]:
        """Page after page until one brings no id not seen before (some servers page wrongly
        or never stop) or all `totalResults` are in."""
        resources: dict[str, Resource] = {}
        start = 1
        while True:
            paging = {"startIndex": str(start), "count": str(await self.page_size())}
            page = await self._request("GET", f"/{kind}", params={**params, **paging})
            batch = page.get("Resources", [])
            new = {str(r.get("id")): r for r in batch if str(r.get("id")) not in resources}
            resources.update(new)
            start += len(batch)
            if not new or len(resources) >= int(page.get("totalResults", 0)):
                return list(resources.values())

    async def create(self, kind: str, body: Resource) -> Resource:
        return await self._request("POST", f"/{kind}", body=body)

    async def patch(
        self,
        kind: str,
        resource_id: str,
        operations: Sequence[Mapping[str, Any]],
        version: str | None = None,
    ) -> None:
        """PATCH (200 or 204 both fine). With `version` and a target that advertises ETags,
        only if the resource is still at that version: else `ScimRejected` with status 412."""
        if operations:
            body = {"schemas": [PATCH_OP], "Operations": list(operations)}
            headers = None
            if version and await self.etags_supported():
                headers = {"If-Match": version}
            await self._request(
                "PATCH", _resource_path(kind, resource_id), body=body, headers=headers
            )

    async def change_members(
        self, group_id: str, add: Sequence[Mapping[str, str]], remove: Sequence[str]
    ) -> int:
        """Add and remove Group members as a diff, at most `MEMBERS_PER_PATCH` operations per
        PATCH (targets cap request sizes; a failed chunk is retried alone). The PATCH count."""
        operations: list[dict[str, Any]] = [
            {"op": "remove", "path": f"members[{filter_eq('value', member_id)}]"}
            for member_id in remove
        ]
        operations.extend({"op": "add", "path": "members", "value": [member]} for member in add)
        for start in range(0, len(operations), MEMBERS_PER_PATCH):
            await self.patch("Groups", group_id, operations[start : start + MEMBERS_PER_PATCH])
        return -(-len(operations) // MEMBERS_PER_PATCH)

    async def delete(self, kind: str, resource_id: str) -> None:
        try:
            await self._request("DELETE", _resource_path(kind, resource_id))
        except ScimRejected as exc:
            if exc.status != 404:  # already gone: deleting is idempotent
                raise

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        probing: bool = False,
    ) -> Resource:
        content = orjson.dumps(body) if body is not None else None
        for attempt in range(1, _ATTEMPTS + 1):
            if self.health.reason is not None and not probing:
                raise TargetQuarantined(f"SCIM target quarantined: {self.health.reason}")
            await self.pace.wait()
            started = time.perf_counter()
            try:
                response = await self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                metrics.SCIM_REQUESTS.labels(method, "transport").inc()
                failure = ScimUnavailable(f"{method} {path}: {type(exc).__name__}")
                self.health.failed(failure.args[0])
                delay = _backoff(attempt)
            else:
                metrics.SCIM_SECONDS.labels(method).observe(time.perf_counter() - started)
                metrics.SCIM_REQUESTS.labels(method, str(response.status_code)).inc()
                if response.status_code < 400:
                    self.health.succeeded()
                    return _json(response)
                refused = _failure(method, path, response)
                if response.status_code in (401, 403):
                    self.health.quarantine(f"{method} {path}: HTTP {response.status_code}")
                    raise TargetQuarantined(f"SCIM target quarantined: {refused}")
                if isinstance(refused, ScimRejected):
                    self.health.succeeded()  # the target works; the data was wrong
                    raise refused
                failure = refused
                delay = failure.retry_after or _backoff(attempt)
                if response.status_code == 429:
                    await self.pace.throttled(min(delay, 30.0))  # everyone holds off
                    if attempt < _ATTEMPTS and not probing:
                        continue  # the pace waits out the pause before the next attempt
                else:
                    self.health.failed(f"HTTP {response.status_code}")
            if attempt == _ATTEMPTS or probing:
                raise failure
            await asyncio.sleep(min(delay, 30.0))
        raise AssertionError("unreachable")


def _json(response: httpx.Response) -> Resource:
    if response.status_code == 204 or not response.content:
        return {}
    data: Resource = orjson.loads(response.content)
    return data


def _failure(method: str, path: str, response: httpx.Response) -> ScimRejected | ScimUnavailable:
    status = response.status_code
    if status in (429, 503) or status >= 500:
        return ScimUnavailable(
            f"{method} {path}: HTTP {status}", _retry_after(response.headers.get("retry-after"))
        )
    try:
        error = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        error = {}
    detail = str(error.get("detail") or response.text[:200]) if isinstance(error, dict) else ""
    scim_type = error.get("scimType") if isinstance(error, dict) else None
    return ScimRejected(status, scim_type, f"{method} {path}: {detail}")


def _retry_after(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _backoff(attempt: int) -> float:
    """Exponential with full jitter: 0.2 s, 0.4 s, 0.8 s ... spread at random below that."""
    return random.uniform(0, 0.2 * 2 ** (attempt - 1))  # noqa: S311 - jitter, not crypto


def _resource_path(kind: str, resource_id: str) -> str:
    """`/Users/<id>`: the id is the target's, so it is one encoded path segment whatever it
    holds (`../Groups/x` or `x?attributes=` must not reach another resource). An id that is
    no segment at all (empty, `.` or `..`, which URLs collapse) names nothing we may touch."""
    segment = quote(str(resource_id), safe="")
    if segment in ("", ".", ".."):
        raise ScimRejected(502, "invalidValue", f"the target gave an unusable id {resource_id!r}")
    return f"/{kind}/{segment}"
