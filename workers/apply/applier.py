"""Apply one contact event to the SCIM target by bringing the touched entity to the source's state.

Idempotent and order-tolerant: the applier never trusts a partial callback, it reads the current
user or department (from a complete event, or the vendor API), makes sure the departments it
depends on exist (fetching them if needed), then writes only what differs on the target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog

from schemas.config import ScimSettings
from schemas.event import ContactEvent
from schemas.types import DepartmentMode
from workers.apply.guard import DeletionGuard, Kind
from workers.apply.mapping import (
    GroupRef,
    Namespace,
    Operation,
    group_patch,
    group_resource,
    user_patch,
    user_resource,
)
from workers.consume import attempts
from workers.errors import DeadLetter, ScimRejected
from workers.scim.target import ORGSTREAM_GROUP, Resource, ScimTarget, filter_eq, scim_filter
from workers.vendors.source import (
    SourceDepartment,
    SourceDirectory,
    SourceUser,
    department_from_attributes,
    user_from_attributes,
)

_PRECONDITION_ATTEMPTS: Final = 3
_MAX_DEPTH: Final = 64  # deeper than any real org chart; stops a parent cycle in bad data
log = structlog.get_logger("orgstream.worker")


@dataclass
class AppliedOps:
    """The SCIM writes one event caused, for the log and the sync history, and why there were
    none when there were none."""

    writes: list[str] = field(default_factory=list)
    deleted: Kind | None = None  # a user deactivated or deleted, or a department deleted
    skip_reason: str = "the target already matches the source"

    def add(self, method: str, what: str) -> None:
        self.writes.append(f"{method} {what}")


class TenantApplier:
    """Applies one tenant's events to its SCIM target."""

    def __init__(
        self,
        ns: Namespace,
        scim: ScimSettings,
        target: ScimTarget,
        source: SourceDirectory,
        guard: DeletionGuard | None = None,
    ) -> None:
        self._ns = ns
        self._settings = scim
        self._target = target
        self._source = source
        self._guard = guard
        self._mode: DepartmentMode | None = None

    @property
    def target(self) -> ScimTarget:
        return self._target

    @property
    def namespace(self) -> Namespace:
        return self._ns

    @property
    def source(self) -> SourceDirectory:
        return self._source

    @property
    def user_delete(self) -> str:
        return self._settings.user_delete

    async def apply(self, event: ContactEvent, deletions_approved: bool = False) -> AppliedOps:
        """Bring the event's entity to the source's state. Deactivations and deletions pass the
        mass-deletion guard first, unless an operator approved them (`Held` otherwise)."""
        ops = AppliedOps()
        if event.entity == "user":
            await self._apply_user(event, ops, deletions_approved)
        else:
            await self._apply_department(event, ops, deletions_approved)
        if ops.deleted and self._guard is not None:
            await self._guard.record(self._ns.tenant, ops.deleted)
        return ops

    # ---- users -----------------------------------------------------------------------------

    async def _apply_user(self, event: ContactEvent, ops: AppliedOps, approved: bool) -> None:
        userid = event.entity_id
        if event.change == "deleted":
            await self._deprovision(userid, ops, approved)
            return
        if event.change == "renamed":
            new_userid = str(event.attributes.get("new_userid") or userid)
            await self._rename(userid, new_userid, ops)
            userid = new_userid
        user = user_from_attributes(event.attributes) if event.change == "created" else None
        if user is None:
            user = await self._source.get_user(userid)
        if user is None:
            await self._deprovision(userid, ops, approved)  # not found at the source: it is gone
        else:
            await self.upsert_user(user, ops, approved)

    async def upsert_user(
        self, user: SourceUser, ops: AppliedOps, deletions_approved: bool = False
    ) -> None:
        refs: dict[int, GroupRef] = {}
        for department_id in user.departments:
            ref = await self._ensure_department(department_id, ops, depth=0)
            if ref is not None:
                refs[department_id] = ref
        main = refs.get(user.main_department or -1) or next(iter(refs.values()), None)
        manager_id = await self._manager_id(user)
        desired = user_resource(user, self._ns, main.name if main else None, manager_id)
        current = await self.find_user(user.userid)
        held: set[str] | None = None
        if current is None:
            current = await self.create_resource("Users", desired, ops)
            if ops.writes and ops.writes[-1].startswith("POST /Users"):
                held = set()  # made just now: in no Group yet, no need to ask the target
        else:
            if current.get("active") is not False and not user.active:
                # Disabled at the source: a deactivation like a leaver's, so guarded like one.
                await self._admit_deletion(
                    "user", f"deactivating user {user.userid}", deletions_approved
                )
                ops.deleted = "user"
            await self.patch_resource("Users", current, lambda now: user_patch(now, desired), ops)
        await self._sync_memberships(current["id"], {ref.id for ref in refs.values()}, ops, held)

    async def _deprovision(self, userid: str, ops: AppliedOps, approved: bool) -> None:
        """Leaver: out of every department Group, then deactivated (or deleted by policy)."""
        current = await self.find_user(userid)
        if current is None:
            ops.skip_reason = "gone at the source and not on the target"
            return
        deleting = self._settings.user_delete == "delete"
        if deleting or current.get("active") is not False:
            await self._admit_deletion("user", f"deprovisioning user {userid}", approved)
            ops.deleted = "user"
        await self._sync_memberships(current["id"], set(), ops)
        if self._settings.user_delete == "delete":
            await self._target.delete("Users", current["id"])
            ops.add("DELETE", f"/Users/{current['id']}")
        elif current.get("active") is not False:
            patch = [{"op": "replace", "path": "active", "value": False}]
            await self.patch_resource("Users", current, lambda _: patch, ops)

    async def _rename(self, old: str, new: str, ops: AppliedOps) -> None:
        """WeCom NewUserID: move externalId and userName, keeping the resource and its groups."""
        current, taken = await self.find_user(old), await self.find_user(new)
        if current is not None and taken is not None:
            # An event for the new id was applied first (another partition) and created it
            # from the source. The old resource stands for an id that no longer exists: retire
            # it like a leaver. Not counted by the deletion guard: nobody left.
            await self._sync_memberships(current["id"], set(), ops)
            if current.get("active") is not False:
                patch = [{"op": "replace", "path": "active", "value": False}]
                await self.patch_resource("Users", current, lambda _: patch, ops)
            return
        if current is None:
            ops.skip_reason = f"rename {old} -> {new}: already done, or {old} was never synced"
            return
        patch = [
            {"op": "replace", "path": "externalId", "value": self._ns.user(new)},
            {"op": "replace", "path": "userName", "value": self._ns.user_name(new)},
        ]
        await self.patch_resource("Users", current, lambda _: patch, ops)

    async def _manager_id(self, user: SourceUser) -> str | None:
        if not user.direct_leaders:
            return None
        found = await self._target.find_one(
            "Users", filter_eq("externalId", self._ns.user(user.direct_leaders[0]))
        )
        return found["id"] if found else None

    async def find_user(self, userid: str) -> Resource | None:
        """Match on externalId, then userName (adopting a user we did not create)."""
        by_external = await self._target.find_one(
            "Users", filter_eq("externalId", self._ns.user(userid))
        )
        if by_external is not None:
            return by_external
        user_name = self._ns.user_name(userid)
        by_name = await self._target.find_one("Users", filter_eq("userName", user_name))
        if by_name is None:
            return None
        owner = by_name.get("externalId")
        if owner and owner != self._ns.user(userid):
            raise ScimRejected(409, "uniqueness", f"userName {user_name!r} belongs to {owner!r}")
        return by_name

    async def _sync_memberships(
        self, user_id: str, wanted: set[str], ops: AppliedOps, held: set[str] | None = None
    ) -> None:
        if held is None:
            held = await self._department_groups_holding(user_id)
        for group_id in held - wanted:
            await self._remove_member(group_id, user_id, ops)
        for group_id in wanted - held:
            await self._add_member(group_id, user_id, "User", ops)

    # ---- departments -----------------------------------------------------------------------

    async def _apply_department(self, event: ContactEvent, ops: AppliedOps, approved: bool) -> None:
        department_id = _department_id(event.entity_id)
        if event.change == "deleted":
            await self._delete_department(department_id, ops, approved)
            return
        department = None
        if event.change == "created":
            department = department_from_attributes(event.attributes)
        if department is None:
            department = await self._source.get_department(department_id)
        if department is None:
            await self._delete_department(department_id, ops, approved)
        else:
            await self.upsert_department(department, ops, depth=0)

    async def _ensure_department(
        self, department_id: int, ops: AppliedOps, depth: int
    ) -> GroupRef | None:
        """The department's Group, created (with its ancestors) from the source if missing."""
        existing = await self._find_group(department_id)
        if existing is not None:
            return await self._ref(existing)
        department = await self._source.get_department(department_id)
        if department is None:
            return None  # gone at the source: nothing to place a member or child in
        return await self.upsert_department(department, ops, depth)

    async def upsert_department(
        self, department: SourceDepartment, ops: AppliedOps, depth: int
    ) -> GroupRef:
        if depth > _MAX_DEPTH:
            raise DeadLetter(f"department {department.id}: parent chain deeper than {_MAX_DEPTH}")
        parent = None
        if department.parent_id:
            parent = await self._ensure_department(department.parent_id, ops, depth + 1)
        mode = await self.department_mode()
        path = f"{parent.path if parent else ''}/{department.id}"
        display = department.name
        if mode == "flat" and parent is not None:
            display = f"{parent.display_name}/{department.name}"
        desired = group_resource(
            department, self._ns, display, parent, path, with_extension=mode == "extension"
        )
        current = await self._find_group(department.id)
        if current is None:
            current = await self.create_resource("Groups", desired, ops)
        else:
            before = await self._ref(current)
            await self.patch_resource("Groups", current, lambda now: group_patch(now, desired), ops)
            await self._move_descendants(before, display, path, ops)
        if mode == "nested":
            await self._link_parent(current["id"], parent, ops)
        return GroupRef(current["id"], department.name, display, path)

    async def _delete_department(self, department_id: int, ops: AppliedOps, approved: bool) -> None:
        current = await self._find_group(department_id)
        if current is None:
            ops.skip_reason = "gone at the source and not on the target"
            return
        await self._admit_deletion("department", f"deleting department {department_id}", approved)
        ops.deleted = "department"
        if await self.department_mode() == "nested":
            await self._link_parent(current["id"], None, ops)
        await self._target.delete("Groups", current["id"])
        ops.add("DELETE", f"/Groups/{current['id']}")

    async def _link_parent(self, child_id: str, parent: GroupRef | None, ops: AppliedOps) -> None:
        """Nested mode: the child Group is a member of its parent's Group, and of no other."""
        held = await self._department_groups_holding(child_id)
        for group_id in held - ({parent.id} if parent else set()):
            await self._remove_member(group_id, child_id, ops)
        if parent is not None and parent.id not in held:
            await self._add_member(parent.id, child_id, "Group", ops)

    async def _move_descendants(
        self, before: GroupRef, display: str, path: str, ops: AppliedOps
    ) -> None:
        """Flat and extension modes spell the ancestry in every descendant: rewrite it."""
        mode = await self.department_mode()
        if mode == "flat" and before.display_name != display:
            attribute, old, new = "displayName", before.display_name, display
        elif mode == "extension" and before.path != path:
            attribute, old, new = f"{ORGSTREAM_GROUP}:path", before.path, path
        else:
            return

        def rewrite(group: Resource) -> list[Operation]:
            have = str(group["displayName"] if mode == "flat" else group[ORGSTREAM_GROUP]["path"])
            if not have.startswith(f"{old}/"):
                return []  # moved elsewhere meanwhile: nothing of ours to rewrite
            return [{"op": "replace", "path": attribute, "value": new + have[len(old) :]}]

        subtree = scim_filter(attribute, "sw", f"{old}/")
        for group in await self._target.find("Groups", subtree, excluded="members"):
            if str(group.get("externalId", "")).startswith(self._ns.department_prefix):
                await self.patch_resource("Groups", group, rewrite, ops)

    async def department_mode(self) -> DepartmentMode:
        """`auto`: the Group extension when the target advertises it, else nested groups."""
        if self._mode is None:
            self._mode = self._settings.department_mode
            if self._mode == "auto":
                schemas = await self._target.schema_ids()
                self._mode = "extension" if ORGSTREAM_GROUP in schemas else "nested"
        return self._mode

    async def _ref(self, group: Resource) -> GroupRef:
        display = str(group.get("displayName", ""))
        extension = group.get(ORGSTREAM_GROUP) or {}
        name = display.rpartition("/")[2] if await self.department_mode() == "flat" else display
        return GroupRef(group["id"], name, display, str(extension.get("path", "")))

    async def _find_group(self, department_id: int) -> Resource | None:
        return await self._target.find_one(
            "Groups", filter_eq("externalId", self._ns.department(department_id))
        )

    # ---- shared writes ---------------------------------------------------------------------

    async def _admit_deletion(self, kind: Kind, what: str, approved: bool) -> None:
        if self._guard is None or approved:
            return

        async def population() -> int:
            """The tenant's users (deactivated ones included) or departments on the target."""
            if kind == "user":
                prefix, resource = self._ns.user(""), "Users"
            else:
                prefix, resource = self._ns.department_prefix, "Groups"
            return await self._target.count(resource, scim_filter("externalId", "sw", prefix))

        await self._guard.admit(self._ns.tenant, kind, what, population)

    async def _department_groups_holding(self, member_id: str) -> set[str]:
        groups = await self._target.find(
            "Groups", filter_eq("members.value", member_id), excluded="members"
        )
        prefix = self._ns.department_prefix
        return {g["id"] for g in groups if str(g.get("externalId", "")).startswith(prefix)}

    async def _add_member(self, group_id: str, member_id: str, kind: str, ops: AppliedOps) -> None:
        value = [{"value": member_id, "type": kind}]
        await self._target.patch(
            "Groups", group_id, [{"op": "add", "path": "members", "value": value}]
        )
        ops.add("PATCH", f"/Groups/{group_id} +{kind} {member_id}")

    async def _remove_member(self, group_id: str, member_id: str, ops: AppliedOps) -> None:
        path = f"members[{filter_eq('value', member_id)}]"
        await self._target.patch("Groups", group_id, [{"op": "remove", "path": path}])
        ops.add("PATCH", f"/Groups/{group_id} -{member_id}")

    async def create_resource(self, kind: str, desired: Resource, ops: AppliedOps) -> Resource:
        """POST; on 409 another writer won the race: adopt its resource and patch it instead."""
        try:
            created = await self._target.create(kind, desired)
        except ScimRejected as exc:
            if exc.status != 409:
                raise
            existing = await self._target.find_one(
                kind, filter_eq("externalId", desired["externalId"])
            )
            if existing is None:
                raise
            patch = user_patch if kind == "Users" else group_patch
            await self.patch_resource(kind, existing, lambda now: patch(now, desired), ops)
            return existing
        ops.add("POST", f"/{kind} {desired['externalId']}")
        return created

    async def patch_resource(
        self,
        kind: str,
        current: Resource,
        diff: Callable[[Resource], Sequence[Operation]],
        ops: AppliedOps,
    ) -> None:
        """PATCH what `diff` finds between the resource and the wanted state, conditional on
        its version where the target has ETags. On 412 someone changed it meanwhile: read it
        again and diff again (a bounded number of times)."""
        for attempt in range(_PRECONDITION_ATTEMPTS):
            operations = diff(current)
            if not operations:
                return
            version = (current.get("meta") or {}).get("version")
            try:
                await self._target.patch(kind, current["id"], operations, version)
            except ScimRejected as exc:
                if exc.status != 412 or attempt == _PRECONDITION_ATTEMPTS - 1:
                    raise
                attempts.note(f"{kind}/{current['id']}: 412, changed meanwhile; diffed again")
                current = await self._target.get(kind, current["id"])
                continue
            paths = ",".join(str(o.get("path", "")) for o in operations)
            ops.add("PATCH", f"/{kind}/{current['id']} {paths}")
            return


def _department_id(entity_id: str) -> int:
    try:
        return int(entity_id)
    except ValueError as exc:
        raise DeadLetter(f"department id {entity_id!r} is not a number") from exc
