"""The directory server read as a SCIM client that is not ours reads it (scim2-client), in
pages of 7, and shaped like the simulator's directory so the two compare."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import httpx2
from scim2_client.engines.httpx2 import AsyncSCIMClient
from scim2_models import (
    URN,
    EnterpriseUser,
    Extension,
    Group,
    ListResponse,
    ResourceType,
    ScimProvider,
    SearchRequest,
    User,
)

from workers.dev.harness import Simulator
from workers.simulator.views import DirectoryView, UserRow, source_view

PAGE = 7


class OrgstreamGroup(Extension):
    """The Group extension the server describes in /Schemas: where a department sits."""

    __schema__ = URN("urn:ietf:params:scim:schemas:extension:orgstream:2.0:Group")
    parent_external_id: str | None = None
    parent_id: str | None = None
    path: str | None = None
    order: int | None = None


async def read_all(scim: AsyncSCIMClient, resource_type: str) -> list[Any]:
    """Every resource of a type, a page of 7 at a time, until a page comes back empty."""
    found: list[Any] = []
    start = 1
    while True:
        page = await scim.query(
            resource_type, query_parameters=SearchRequest(start_index=start, count=PAGE)
        )
        assert isinstance(page, ListResponse)
        resources = page.resources or []
        assert len(resources) <= PAGE
        if not resources:
            assert page.total_results == len(found)
            return found
        found += resources
        start += len(resources)


async def directory_view(url: str, tenant: str, token: str, corp_prefix: str) -> DirectoryView:
    """`corp_prefix`: `<vendor>:<corp_id>:`, the start of every externalId of the tenant."""
    async with httpx2.AsyncClient(
        base_url=f"{url}/scim/v2/{tenant}/", headers={"Authorization": f"Bearer {token}"}
    ) as http:
        # The models of the two resource types, with the extensions /ResourceTypes lists.
        provider = ScimProvider(
            models=(User, EnterpriseUser, Group, OrgstreamGroup),
            resource_types=[
                ResourceType.from_resource(User[EnterpriseUser]),
                ResourceType.from_resource(Group[OrgstreamGroup]),  # type: ignore[misc]
            ],
        )
        scim = AsyncSCIMClient(http, provider=provider)
        await scim.discover()
        users = await read_all(scim, "User")
        groups = await read_all(scim, "Group")
    department_of = {g.id: int(g.external_id.removeprefix(f"{corp_prefix}dept:")) for g in groups}
    departments: dict[int, tuple[str, int]] = {}
    member_of: dict[str, set[int]] = defaultdict(set)
    for group in groups:
        extension = group[OrgstreamGroup]
        parent = extension.parent_external_id if extension else None
        parent_id = int(parent.removeprefix(f"{corp_prefix}dept:")) if parent else 0
        departments[department_of[group.id]] = (group.display_name, parent_id)
        for member in group.members or []:
            member_of[member.value].add(department_of[group.id])
    rows: dict[str, UserRow] = {}
    for user in users:
        userid = user.external_id.removeprefix(f"{corp_prefix}user:")
        email = user.emails[0].value if user.emails else ""
        rows[userid] = (
            user.display_name or "",
            bool(user.active),
            user.title or "",
            email or "",
            tuple(sorted(member_of[user.id])),
        )
    return DirectoryView(departments, rows)


async def wait_directory_converged(
    sim: Simulator, url: str, tenant: str, token: str, timeout: float = 60.0
) -> tuple[list[str], DirectoryView]:
    """Read the served directory until it equals the simulator's; what still differs."""
    deadline = time.monotonic() + timeout
    prefix = f"{sim.vendor}:{sim.corp_id}:"
    while True:
        view = await directory_view(url, tenant, token, prefix)
        differences = source_view(sim).differences(view)
        if not differences or time.monotonic() > deadline:
            return differences, view
        await asyncio.sleep(0.5)
