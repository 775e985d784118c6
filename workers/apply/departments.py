"""Departments as Groups: created with their ancestors, renamed and moved with their subtree
(replaced where the target refuses to rename a Group), deleted when the source no longer has
them, in the tenant's `department_mode`. What is on the
target comes from the ledger (`ScimWriter.locate`), so a department already there costs no
request, and a subtree is found there too, never by a `sw` filter on the target."""

from __future__ import annotations

from typing import Final

from schemas.config import ScimSettings
from schemas.event import ContactEvent
from schemas.types import DepartmentMode
from workers.apply.mapping import GroupRef, group_resource
from workers.apply.scope import ScopedSource
from workers.apply.writes import AppliedOps, ScimWriter
from workers.errors import DeadLetter, ScimRejected
from workers.scim.target import ORGSTREAM_GROUP, Resource
from workers.store.target_ledger import Known
from workers.vendors.source import SourceDepartment, department_from_attributes

_MAX_DEPTH: Final = 64  # deeper than any real org chart; stops a parent cycle in bad data


class DepartmentApplier:
    def __init__(self, writer: ScimWriter, source: ScopedSource, scim: ScimSettings) -> None:
        """`source`: the tenant's directory as the target's scope lets it see."""
        self._writer = writer
        self._source = source
        self._settings = scim
        self._mode: DepartmentMode | None = None

    async def apply(self, event: ContactEvent, ops: AppliedOps, approved: bool) -> None:
        department_id = event.entity_id
        if event.change == "deleted":
            await self._delete(department_id, ops, approved)
            return
        department = None
        if event.change == "created":
            department = department_from_attributes(event.attributes)
        if department is None:
            department = await self._source.get_department(department_id)
        else:
            department = await self._source.department(department)
        if department is None:  # gone at the source, or out of the target's scope
            await self._delete(department_id, ops, approved)
        else:
            await self.upsert(department, ops, depth=0)

    async def ensure(self, department_id: str, ops: AppliedOps, depth: int) -> GroupRef | None:
        """The department's Group, created (with its ancestors) from the source if missing."""
        existing = await self._find_group(department_id)
        if existing is not None:
            return await self._ref(existing)
        department = await self._source.get_department(department_id)
        if department is None:
            return None  # gone at the source: nothing to place a member or child in
        return await self.upsert(department, ops, depth)

    async def upsert(self, department: SourceDepartment, ops: AppliedOps, depth: int) -> GroupRef:
        if depth > _MAX_DEPTH:
            raise DeadLetter(f"department {department.id}: parent chain deeper than {_MAX_DEPTH}")
        parent = None
        if department.parent_id:
            parent = await self.ensure(department.parent_id, ops, depth + 1)
        mode = await self.mode()
        path = f"{parent.path if parent else ''}/{department.id}"
        display = department.name
        if mode == "flat" and parent is not None:
            display = f"{parent.display_name}/{department.name}"
        desired = group_resource(
            department, self._writer.ns, display, parent, path, with_extension=mode == "extension"
        )
        current = await self._find_group(department.id)
        if current is None:
            group_id = str(
                (await self._writer.create_resource("Groups", desired, ops)).resource["id"]
            )
        else:
            before = await self._ref(current)
            group_id = await self._update(current, desired, ops)
            await self._move_descendants(before, display, path, ops)
        if mode == "nested":
            await self._link_parent(group_id, parent, ops)
        return GroupRef(group_id, department.name, display, path)

    async def mode(self) -> DepartmentMode:
        """`auto`: the Group extension when the target advertises it, else flat (paths in
        displayName): almost no target supports nested Groups (docs/scim-targets.md §7).
        A target that `auto` filled with nested Groups before keeps its child-in-parent links
        (left, not removed); the next change of each department spells its path instead."""
        if self._mode is None:
            mode = self._settings.department_mode
            if mode == "auto":
                # Decide only once /Schemas has answered: caching "auto" after a failed read
                # would create every later group without its parent.
                schemas = await self._writer.target.schema_ids()
                mode = "extension" if ORGSTREAM_GROUP in schemas else "flat"
            self._mode = mode
        return self._mode

    async def _delete(self, department_id: str, ops: AppliedOps, approved: bool) -> None:
        current = await self._find_group(department_id)
        if current is None:
            ops.skip_reason = "gone at the source and not on the target"
            return
        await self._writer.admit_deletion(
            "department", f"deleting department {department_id}", approved, ops
        )
        ops.deleted = "department"
        if await self.mode() == "nested":
            await self._link_parent(current.scim_id, None, ops)
        await self._writer.delete("Groups", current, ops)

    async def _link_parent(self, child_id: str, parent: GroupRef | None, ops: AppliedOps) -> None:
        """Nested mode: the child Group is a member of its parent's Group, and of no other."""
        held = await self._writer.department_groups_holding(child_id)
        for group_id in held - ({parent.id} if parent else set()):
            await self._writer.remove_member(group_id, child_id, ops)
        if parent is not None and parent.id not in held:
            await self._writer.add_member(parent.id, child_id, "Group", ops)

    async def _move_descendants(
        self, before: GroupRef, display: str, path: str, ops: AppliedOps
    ) -> None:
        """Flat and extension modes spell the ancestry in every descendant: rewrite it (the
        descendants as the ledger knows them)."""
        mode = await self.mode()
        if mode == "flat" and before.display_name != display:
            attribute, old, new = "displayName", before.display_name, display
        elif mode == "extension" and before.path != path:
            attribute, old, new = f"{ORGSTREAM_GROUP}:path", before.path, path
        else:
            return
        groups = await self._writer.ledger.under("Groups", self._writer.ns.department_prefix)
        for group in groups.values():
            written = group.written
            extension = written.get(ORGSTREAM_GROUP) or {}
            have = str(
                written.get("displayName", "") if mode == "flat" else extension.get("path", "")
            )
            if have.startswith(f"{old}/"):
                if mode == "flat":  # a rename, which some targets refuse
                    moved = {**written, "displayName": new + have[len(old) :]}
                    await self._update(group, moved, ops)
                    continue
                operations = [{"op": "replace", "path": attribute, "value": new + have[len(old) :]}]
                await self._writer.patch_known("Groups", group, operations, ops)

    async def _update(self, current: Known, desired: Resource, ops: AppliedOps) -> str:
        """PATCH the Group to `desired`; its id afterwards (a new one where it was replaced)."""
        try:
            await self._writer.update("Groups", current, desired, ops)
        except ScimRejected as exc:
            renamed = current.written.get("displayName") != desired.get("displayName")
            # Only a refusal that says the name cannot change (RFC 7644's `mutability`), and
            # not in nested mode, where child Groups are members too: anything else (a name
            # too long, a duplicate) would fail the same way after the old Group was deleted.
            refused = exc.scim_type == "mutability" and await self.mode() != "nested"
            if not (renamed and refused):
                raise
            return await self._replace(current, desired, ops)
        return current.scim_id

    async def _replace(self, current: Known, desired: Resource, ops: AppliedOps) -> str:
        """A target that cannot rename a synced Group (Atlassian, docs/scim-targets.md §7):
        delete it, create it under its new name, and put back the members orgstream had put
        in it; the new Group's id. Deleted first, since such targets keep externalIds unique;
        if the create fails, the event is retried and the members come back with the next
        full sync or their own next change."""
        members = await self._writer.ledger.members_of(current.scim_id)
        await self._writer.delete("Groups", current, ops)
        created = (await self._writer.create_resource("Groups", desired, ops)).resource
        group_id = str(created["id"])
        for member_id in sorted(members):
            await self._writer.add_member(group_id, member_id, "User", ops)
        return group_id

    async def _ref(self, group: Known) -> GroupRef:
        display = str(group.written.get("displayName", ""))
        extension = group.written.get(ORGSTREAM_GROUP) or {}
        name = display.rpartition("/")[2] if await self.mode() == "flat" else display
        return GroupRef(group.scim_id, name, display, str(extension.get("path", "")))

    async def _find_group(self, department_id: str) -> Known | None:
        return await self._writer.locate("Groups", self._writer.ns.department(department_id))
