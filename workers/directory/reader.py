"""Resources as the server returns them: the kept body with its `meta`, a Group with its
members and a User with its groups, one query per page for each."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from workers.directory.filters import compile_filter
from workers.directory.listing import ListQuery, order_of, project
from workers.directory.responses import LIST_SCHEMA
from workers.scim.target import ENTERPRISE_USER, ORGSTREAM_GROUP
from workers.store.directory_index import DirectoryIndex, Stored
from workers.store.directory_rows import GROUP, USER

_ENDPOINT = {USER: "Users", GROUP: "Groups"}


@dataclass(frozen=True, slots=True)
class Found:
    resource: dict[str, Any]
    version: str


class DirectoryReader:
    def __init__(self, index: DirectoryIndex, leaver_days: int, max_results: int) -> None:
        self._index = index
        self._leaver_days = leaver_days
        self.max_results = max_results

    async def get(
        self, tenant: str, kind: str, scim_id: str, base: str, idp_view: bool = False
    ) -> Found | None:
        """`idp_view`: as the provisioning token's holder sees it (`_as_the_idp_sees`)."""
        stored = await self._index.get(tenant, kind, scim_id, self._visible_since())
        if stored is None:
            return None
        (resource,) = await self._render(tenant, kind, [stored], base, idp_view)
        return Found(resource, resource["meta"]["version"])

    async def page(
        self,
        tenant: str,
        kind: str,
        query: ListQuery,
        base: str,
        lenient: bool = False,
        idp_view: bool = False,
    ) -> dict[str, Any]:
        """`lenient`: part of a search over every type, where an attribute this type does not
        have compares false and sorts nothing."""
        where = compile_filter(kind, tenant, query.filter, lenient)
        order = order_of(kind, tenant, query, lenient)
        count = self.max_results if query.count is None else min(query.count, self.max_results)
        page = await self._index.search(
            tenant, kind, where, order, query.start_index - 1, count, self._visible_since()
        )
        resources = await self._render(tenant, kind, list(page.resources), base, idp_view)
        return {
            "schemas": [LIST_SCHEMA],
            "totalResults": page.total,
            "startIndex": query.start_index,
            "itemsPerPage": len(resources),
            "Resources": [project(r, query) for r in resources],
        }

    async def _render(
        self, tenant: str, kind: str, page: list[Stored], base: str, idp_view: bool
    ) -> list[dict[str, Any]]:
        ids = [s.scim_id for s in page]
        if kind == GROUP:
            links = await self._index.members(tenant, ids)
            attribute, endpoint, link_type = "members", "Users", USER
        else:
            links = await self._index.groups_of(tenant, ids)
            attribute, endpoint, link_type = "groups", "Groups", "direct"
        rendered = []
        for stored in page:
            resource: dict[str, Any] = orjson.loads(stored.resource)
            linked = links.get(stored.scim_id, [])
            if linked:
                resource[attribute] = [
                    {"value": i, "display": name, "$ref": f"{base}/{endpoint}/{i}",
                     "type": link_type}
                    for i, name in linked
                ]  # fmt: skip
            manager = resource.get(ENTERPRISE_USER, {}).get("manager")
            if isinstance(manager, dict) and "value" in manager:
                manager["$ref"] = f"{base}/Users/{manager['value']}"
            resource["meta"] = {
                "resourceType": kind,
                "created": stored.created,
                "lastModified": stored.last_modified,
                "version": _version(stored),
                "location": f"{base}/{_ENDPOINT[kind]}/{stored.scim_id}",
            }
            rendered.append(_as_the_idp_sees(resource) if idp_view else resource)
        return rendered

    def _visible_since(self) -> str:
        """Leavers deleted before this are no longer served."""
        cutoff = datetime.now(UTC) - timedelta(days=self._leaver_days)
        return cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_the_idp_sees(resource: dict[str, Any]) -> dict[str, Any]:
    """What an IdP reads back is what it can write (docs/provisioning.md): no Group extension
    (where the vendor placed the department, derived) and no member `display` (the user's
    own name); a read-only client keeps both."""
    resource.pop(ORGSTREAM_GROUP, None)
    resource["schemas"] = [s for s in resource.get("schemas", []) if s != ORGSTREAM_GROUP]
    for member in resource.get("members", []):
        member.pop("display", None)
    return resource


def _version(stored: Stored) -> str:
    """A weak ETag that changes whenever the resource does, and after a rebuild of the index
    too (the revision starts again, the time does not)."""
    digest = hashlib.sha256(f"{stored.revision}@{stored.last_modified}".encode()).hexdigest()
    return f'W/"{digest[:20]}"'
