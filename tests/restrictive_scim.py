"""A SCIM 2.0 service provider as little capable as the least capable real targets (AWS IAM
Identity Center, GitHub, Atlassian; docs/scim-targets.md): what orgstream must cope with.

- filters: one `eq` on `externalId`, `userName`, `displayName` or `id`; anything else
  (`sw`, `and`, any `members` filter) is 400 `invalidFilter`;
- GET of a Group never shows its members; `replace` of `members` is 400; a Group cannot be a
  member of a Group (no nesting);
- no ETags, no Bulk, no sort; pages of at most 100;
- optionally a 429 with `Retry-After` on every n-th request (`--throttle-every`), and the
  orgstream Group extension listed in /Schemas (`--with-extension`: stored like any other
  attribute), so that tests can tell a department's parent exactly where names repeat.

Every `/<name>/v2` is a store of its own. Tests read the whole state, Group members included,
at `/<name>/inspect/v2` (or with the header `X-Inspect: 1`), which no real client uses.

    python tests/restrictive_scim.py --port 8200 [--token T] [--throttle-every N]
                                     [--with-extension]
"""

from __future__ import annotations

import argparse
import copy
import re
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MAX_PAGE: Final = 100
# The standard URNs spelled here, not imported: run as a script from tests/, `workers` would be
# tests/workers, and a server of its own should not lean on the client it tests anyway.
CORE_USER: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP: Final = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ORGSTREAM_GROUP: Final = "urn:ietf:params:scim:schemas:extension:orgstream:2.0:Group"
LIST: Final = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR: Final = "urn:ietf:params:scim:api:messages:2.0:Error"
_FILTER: Final = re.compile(
    r'^\s*(externalId|userName|displayName|id)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$'
)
_MEMBER_PATH: Final = re.compile(r'^members\[value eq "((?:[^"\\]|\\.)*)"\]$')
# AWS, Entra and Atlassian also want unique Group displayNames; orgstream does not yet make
# same-named departments distinct (docs/scim-targets.md §8), so this server does not ask it.
_UNIQUE: Final = {"Users": ("userName", "externalId"), "Groups": ("externalId",)}

Resource = dict[str, Any]
Handler = Callable[[Request, "Store", str], Awaitable[Response]]


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type


class Store:
    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Resource]] = {"Users": {}, "Groups": {}}
        self.members: dict[str, list[str]] = defaultdict(list)  # group id -> member ids

    def unique(self, kind: str, resource: Resource, own_id: str | None = None) -> None:
        for attribute in _UNIQUE[kind]:
            value = resource.get(attribute)
            if value is None:
                continue
            for other in self.resources[kind].values():
                if other["id"] != own_id and other.get(attribute) == value:
                    raise ScimError(409, f"{attribute} {value!r} is taken", "uniqueness")


class RestrictiveScim:
    def __init__(
        self,
        token: str | None = None,
        throttle_every: int = 0,
        with_extension: bool = False,
        fixed_group_names: bool = False,
    ) -> None:
        """`fixed_group_names`: a Group's displayName cannot change (Atlassian's synced
        Groups): a PATCH that would change it is a 400 `mutability`."""
        self.token = token
        self.throttle_every = throttle_every
        self.with_extension = with_extension
        self.fixed_group_names = fixed_group_names
        self.requests = 0
        self.stores: dict[str, Store] = defaultdict(Store)
        routes = []
        for base in ("/{tenant}/v2", "/{tenant}/inspect/v2"):
            routes += [
                Route(f"{base}/ServiceProviderConfig", self.config),
                Route(f"{base}/Schemas", self.schemas),
                Route(f"{base}/ResourceTypes", self.resource_types),
                Route(base + "/{kind:str}", self.collection, methods=["GET", "POST"]),
                Route(
                    base + "/{kind:str}/{rid:str}",
                    self.single,
                    methods=["GET", "PATCH", "PUT", "DELETE"],
                ),
            ]
        self.app = Starlette(routes=routes)

    # ---- discovery ------------------------------------------------------------------------

    async def config(self, request: Request) -> Response:
        return _json(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "patch": {"supported": True},
                "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
                "filter": {"supported": True, "maxResults": MAX_PAGE},
                "changePassword": {"supported": False},
                "sort": {"supported": False},
                "etag": {"supported": False},
                "authenticationSchemes": [],
            }
        )

    async def schemas(self, request: Request) -> Response:
        urns = [CORE_USER, CORE_GROUP, ENTERPRISE_USER] + (
            [ORGSTREAM_GROUP] if self.with_extension else []
        )
        listed = [{"id": urn} for urn in urns]
        return _json({"schemas": [LIST], "totalResults": len(listed), "Resources": listed})

    async def resource_types(self, request: Request) -> Response:
        types = [{"id": "User", "endpoint": "/Users"}, {"id": "Group", "endpoint": "/Groups"}]
        return _json({"schemas": [LIST], "totalResults": 2, "Resources": types})

    # ---- resources ------------------------------------------------------------------------

    async def collection(self, request: Request) -> Response:
        return await self._answer(request, self._collection)

    async def single(self, request: Request) -> Response:
        return await self._answer(request, self._single)

    async def _answer(self, request: Request, handler: Handler) -> Response:
        self.requests += 1
        if self.throttle_every and self.requests % self.throttle_every == 0:
            return Response(status_code=429, headers={"Retry-After": "1"})
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(ScimError(401, "bad token"))
        kind = request.path_params["kind"]
        if kind not in ("Users", "Groups"):
            return _error(ScimError(404, f"no endpoint {kind}"))
        try:
            return await handler(request, self.stores[request.path_params["tenant"]], kind)
        except ScimError as exc:
            return _error(exc)

    async def _collection(self, request: Request, store: Store, kind: str) -> Response:
        if request.method == "POST":
            body = await _body(request)
            store.unique(kind, body)
            if kind == "Groups" and body.get("members"):
                raise ScimError(400, "members cannot be set on creation", "invalidValue")
            resource = {**body, "id": secrets.token_hex(8)}
            resource.pop("members", None)
            store.resources[kind][resource["id"]] = resource
            return _json(self._shown(request, store, kind, resource), 201)
        params = request.query_params
        if "sortBy" in params:
            raise ScimError(400, "sorting is not supported", "invalidValue")
        matches = list(store.resources[kind].values())
        if "filter" in params:
            found = _FILTER.match(params["filter"])
            if found is None:
                raise ScimError(400, f"unsupported filter {params['filter']!r}", "invalidFilter")
            attribute, value = found.group(1), _unescape(found.group(2))
            matches = [r for r in matches if r.get(attribute) == value]
        start = max(1, int(params.get("startIndex", "1")))
        count = min(MAX_PAGE, max(0, int(params.get("count", str(MAX_PAGE)))))
        page = matches[start - 1 : start - 1 + count]
        return _json(
            {
                "schemas": [LIST],
                "totalResults": len(matches),
                "startIndex": start,
                "itemsPerPage": len(page),
                "Resources": [self._shown(request, store, kind, r) for r in page],
            }
        )

    async def _single(self, request: Request, store: Store, kind: str) -> Response:
        rid = request.path_params["rid"]
        resource = store.resources[kind].get(rid)
        if resource is None:
            raise ScimError(404, f"{kind}/{rid} not found")
        if request.method == "GET":
            return _json(self._shown(request, store, kind, resource))
        if request.method == "DELETE":
            del store.resources[kind][rid]
            store.members.pop(rid, None)
            for held in store.members.values():
                if rid in held:
                    held.remove(rid)
            return Response(status_code=204)
        if request.method == "PUT":
            raise ScimError(400, "PUT is not supported; use PATCH", "invalidValue")
        body = await _body(request)
        changed = copy.deepcopy(resource)  # refused as a whole, or applied as a whole
        for operation in body.get("Operations", []):
            _patch(store, kind, changed, operation)
        renamed = changed.get("displayName") != resource.get("displayName")
        if self.fixed_group_names and kind == "Groups" and renamed:
            raise ScimError(400, "a synced Group's displayName cannot change", "mutability")
        store.unique(kind, changed, rid)
        resource.clear()
        resource.update(changed)
        return Response(status_code=204)

    def _shown(self, request: Request, store: Store, kind: str, resource: Resource) -> Resource:
        shown = dict(resource)
        shown["meta"] = {"resourceType": kind[:-1], "location": f"/{kind}/{resource['id']}"}
        inspecting = request.headers.get("x-inspect") == "1" or "/inspect/" in request.url.path
        if kind == "Groups" and inspecting:
            shown["members"] = [
                {"value": m, "type": "User"} for m in store.members.get(resource["id"], [])
            ]
        return shown


def _patch(store: Store, kind: str, resource: Resource, operation: Resource) -> None:
    op = str(operation.get("op", "")).lower()
    path = str(operation.get("path", ""))
    value = operation.get("value")
    if kind == "Groups" and path.startswith("members"):
        _patch_members(store, resource["id"], op, path, value)
        return
    if not path:
        if op not in ("add", "replace") or not isinstance(value, dict):
            raise ScimError(400, "a PATCH without path needs an object value", "invalidPath")
        resource.update(value)
        return
    if path.startswith("urn:"):
        urn, _, attribute = path.rpartition(":")
        parent = resource.setdefault(urn, {})
    elif "." in path:
        head, _, attribute = path.partition(".")
        parent = resource.setdefault(head, {})
    else:
        parent, attribute = resource, path
    if op == "remove":
        parent.pop(attribute, None)
    elif op in ("add", "replace"):
        parent[attribute] = value
    else:
        raise ScimError(400, f"unknown op {op!r}", "invalidSyntax")


def _patch_members(store: Store, group_id: str, op: str, path: str, value: Any) -> None:
    held = store.members[group_id]
    if op == "add" and path == "members":
        for member in value or []:
            member_id = str(member.get("value"))
            if member.get("type") == "Group" or member_id in store.resources["Groups"]:
                raise ScimError(400, "a Group cannot be a member of a Group", "invalidValue")
            if member_id not in store.resources["Users"]:
                raise ScimError(400, f"no user {member_id}", "invalidValue")
            if member_id not in held:
                held.append(member_id)
        return
    found = _MEMBER_PATH.match(path)
    if op == "remove" and found is not None:
        member_id = _unescape(found.group(1))
        if member_id in held:
            held.remove(member_id)
        return
    raise ScimError(400, f"{op} {path!r} on members is not supported", "invalidPath")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


async def _body(request: Request) -> Resource:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ScimError(400, "malformed JSON", "invalidSyntax") from exc
    if not isinstance(body, dict):
        raise ScimError(400, "expected an object", "invalidSyntax")
    return body


def _json(body: Resource, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/scim+json")


def _error(exc: ScimError) -> Response:
    body: Resource = {"schemas": [ERROR], "status": str(exc.status), "detail": exc.detail}
    if exc.scim_type:
        body["scimType"] = exc.scim_type
    return _json(body, exc.status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token")
    parser.add_argument("--throttle-every", type=int, default=0)
    parser.add_argument("--with-extension", action="store_true")
    parser.add_argument("--fixed-group-names", action="store_true")
    args = parser.parse_args()
    server = RestrictiveScim(
        args.token, args.throttle_every, args.with_extension, args.fixed_group_names
    )
    uvicorn.run(server.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
