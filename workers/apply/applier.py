"""Apply one contact event to the SCIM target by bringing the touched entity to the source's state.

Idempotent and order-tolerant: the applier never trusts a partial callback, it reads the current
user or department (from a complete event, or the vendor API), makes sure the departments it
depends on exist (fetching them if needed), then writes only what differs on the target.
Departments are `departments.py`'s; the writes themselves `writes.py`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from schemas.config import ScimSettings
from schemas.event import ContactEvent
from schemas.types import DepartmentMode
from workers.apply.departments import DepartmentApplier
from workers.apply.guard import DeletionGuard
from workers.apply.mapping import GroupRef, Namespace, Operation, user_patch, user_resource
from workers.apply.writes import AppliedOps, ScimWriter, Written
from workers.errors import ScimRejected
from workers.scim.target import Resource, ScimTarget, filter_eq
from workers.vendors.source import (
    SourceDepartment,
    SourceDirectory,
    SourceUser,
    user_from_attributes,
)

log = structlog.get_logger("orgstream.worker")

__all__ = ["AppliedOps", "TenantApplier"]


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
        self._writer = ScimWriter(ns, target, guard)
        self._departments = DepartmentApplier(self._writer, source, scim)

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
            await self._departments.apply(event, ops, deletions_approved)
        if ops.deleted:
            await self._writer.record_deletion(ops.deleted)
        return ops

    # ---- what the full sync's reconcile shares -------------------------------------------

    async def department_mode(self) -> DepartmentMode:
        return await self._departments.mode()

    async def upsert_department(
        self, department: SourceDepartment, ops: AppliedOps, depth: int
    ) -> GroupRef:
        return await self._departments.upsert(department, ops, depth)

    async def create_resource(self, kind: str, desired: Resource, ops: AppliedOps) -> Written:
        return await self._writer.create_resource(kind, desired, ops)

    async def patch_resource(
        self,
        kind: str,
        current: Resource,
        diff: Callable[[Resource], Sequence[Operation]],
        ops: AppliedOps,
    ) -> None:
        await self._writer.patch_resource(kind, current, diff, ops)

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
            ref = await self._departments.ensure(department_id, ops, depth=0)
            if ref is not None:
                refs[department_id] = ref
        main = refs.get(user.main_department or -1) or next(iter(refs.values()), None)
        manager_id = await self._manager_id(user)
        desired = user_resource(user, self._ns, main.name if main else None, manager_id)
        current = await self.find_user(user.userid)
        held: set[str] | None = None
        if current is None:
            written = await self._writer.create_resource("Users", desired, ops)
            current = written.resource
            if written.created:
                held = set()  # made just now: in no Group yet, no need to ask the target
        else:
            if current.get("active") is not False and not user.active:
                # Disabled at the source: a deactivation like a leaver's, so guarded like one.
                await self._writer.admit_deletion(
                    "user", f"deactivating user {user.userid}", deletions_approved
                )
                ops.deleted = "user"
            await self._writer.patch_resource(
                "Users", current, lambda now: user_patch(now, desired), ops
            )
        await self._sync_memberships(current["id"], {ref.id for ref in refs.values()}, ops, held)

    async def _deprovision(self, userid: str, ops: AppliedOps, approved: bool) -> None:
        """Leaver: out of every department Group, then deactivated (or deleted by policy)."""
        current = await self.find_user(userid)
        if current is None:
            ops.skip_reason = "gone at the source and not on the target"
            return
        deleting = self._settings.user_delete == "delete"
        if deleting or current.get("active") is not False:
            await self._writer.admit_deletion("user", f"deprovisioning user {userid}", approved)
            ops.deleted = "user"
        await self._sync_memberships(current["id"], set(), ops)
        if deleting:
            await self._target.delete("Users", current["id"])
            ops.add("DELETE", f"/Users/{current['id']}")
        elif current.get("active") is not False:
            await self._deactivate(current, ops)

    async def _rename(self, old: str, new: str, ops: AppliedOps) -> None:
        """WeCom NewUserID: move externalId and userName, keeping the resource and its groups."""
        current, taken = await self.find_user(old), await self.find_user(new)
        if current is not None and taken is not None:
            # An event for the new id was applied first (another partition) and created it
            # from the source. The old resource stands for an id that no longer exists: retire
            # it like a leaver. Not counted by the deletion guard: nobody left.
            await self._sync_memberships(current["id"], set(), ops)
            if current.get("active") is not False:
                await self._deactivate(current, ops)
            return
        if current is None:
            ops.skip_reason = f"rename {old} -> {new}: already done, or {old} was never synced"
            return
        patch = [
            {"op": "replace", "path": "externalId", "value": self._ns.user(new)},
            {"op": "replace", "path": "userName", "value": self._ns.user_name(new)},
        ]
        await self._writer.patch_resource("Users", current, lambda _: patch, ops)

    async def _deactivate(self, current: Resource, ops: AppliedOps) -> None:
        patch = [{"op": "replace", "path": "active", "value": False}]
        await self._writer.patch_resource("Users", current, lambda _: patch, ops)

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
            held = await self._writer.department_groups_holding(user_id)
        for group_id in held - wanted:
            await self._writer.remove_member(group_id, user_id, ops)
        for group_id in wanted - held:
            await self._writer.add_member(group_id, user_id, "User", ops)
