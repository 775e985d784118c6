"""A tenant's Groups written as departments: created under the parent their name or extension
names, renamed or moved, their members added and removed (workers/provision/memberships.py),
and what the IdP wrote of them that the vendor cannot hold kept beside the index."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from schemas.config.model import ProvisioningSettings
from workers.directory.writes import WriteRequest
from workers.provision.errors import ProvisionError
from workers.provision.groups import group_name, member_ids
from workers.provision.memberships import Memberships
from workers.provision.recorded import RecordedWriter
from workers.provision.refresh import Refresher
from workers.store.directory_index import DirectoryIndex
from workers.store.directory_rows import GROUP
from workers.store.mirror import Mirror
from workers.vendors.writes import DepartmentWrite

Served = Callable[[str, str, WriteRequest], Awaitable[dict[str, Any]]]


@dataclass
class Done:
    """A write carried out: the answer's status, what it was about, the resource to return."""

    status: int
    entity: str
    entity_id: str
    change: str
    resource: dict[str, Any] | None = None


class GroupWrites:
    def __init__(
        self,
        tenant: str,
        rules: ProvisioningSettings,
        tree: Memberships,
        refresher: Refresher,
        index: DirectoryIndex,
        mirror: Mirror,
        served: Served,
    ) -> None:
        self._tenant = tenant
        self._rules = rules
        self._tree = tree
        self._refresh = refresher
        self._index = index
        self._mirror = mirror
        self._served = served

    async def create(self, request: WriteRequest, writer: RecordedWriter) -> Done:
        body = request.body
        name = group_name(body, self._rules.department_prefix)
        parent = await self._tree.parent_of(name.parents, name.parent_id)
        await self._tree.check(member_ids(body))  # before anything is made at the vendor
        department_id = await writer.create_department(DepartmentWrite(name.name, parent))
        await self._keep_group(department_id, body, name.name)
        await self._refresh.department(department_id)
        for member in member_ids(body):
            await self._tree.join(member, department_id, writer)
        served = await self._served(GROUP, department_id, request)
        return Done(201, "department", department_id, "created", served)

    async def update(
        self,
        department_id: str,
        current: dict[str, Any],
        desired: dict[str, Any],
        request: WriteRequest,
        writer: RecordedWriter,
    ) -> Done:
        kept = await self._mirror.department(self._tenant, department_id)
        if kept is None:
            raise ProvisionError(404, f"Group {request.scim_id} is no longer at the vendor")
        before, after = set(member_ids(current)), member_ids(desired)
        await self._tree.check([m for m in after if m not in before])
        renamed = desired.get("displayName") != current.get("displayName")
        name = group_name(desired, self._rules.department_prefix)
        wanted, parent = kept.name, kept.parent_id
        if renamed:  # a members-only change leaves the name (even one with a "/") alone
            prefix, shown = self._rules.department_prefix, str(current.get("displayName") or "")
            was = (
                group_name(current, prefix) if shown.strip() and shown.startswith(prefix) else None
            )
            # A body without the extension (the IdP's view has none) states no parent by id.
            moved = (
                was is None
                or name.parents != was.parents
                or (name.parent_id is not None and name.parent_id != was.parent_id)
            )
            if moved and (name.parents or name.parent_id):
                parent = await self._tree.parent_of(name.parents, name.parent_id)
            wanted = name.name
        if (wanted, parent) != (kept.name, kept.parent_id):
            await writer.update_department(department_id, DepartmentWrite(wanted, parent))
            await self._keep_group(department_id, desired, wanted)
            await self._refresh.department(department_id)
        else:
            await self._keep_group(department_id, desired, kept.name)
            await self._refresh.reindex_department(department_id)
        for member in after:
            if member not in before:
                await self._tree.join(member, department_id, writer)
        for member in before - set(after):
            await self._tree.leave(member, department_id, writer)
        served = await self._served(GROUP, department_id, request)
        return Done(200, "department", department_id, "updated", served)

    async def _keep_group(self, department_id: str, resource: dict[str, Any], name: str) -> None:
        kept: dict[str, Any] = {"externalId": str(resource.get("externalId") or "") or None}
        if resource.get("displayName") != name:
            kept["displayName"] = resource.get("displayName")
        await self._index.keep_idp_attributes(self._tenant, GROUP, department_id, kept)
