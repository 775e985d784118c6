"""Apply one contact event to the SCIM target by bringing the touched entity to the source's state.

Idempotent and order-tolerant: the applier never trusts a partial callback, it reads the current
user or department (from a complete event, or the vendor API), makes sure the departments it
depends on exist (fetching them if needed), then writes only what differs from what the
target's ledger says was last written (no request at all when nothing does).
Departments are `departments.py`'s; the writes themselves and the ledger `writes.py`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from schemas.config import ScimSettings
from schemas.event import ContactEvent
from schemas.record import NO_PARENT
from schemas.types import DepartmentMode
from workers import attempts
from workers.apply.departments import DepartmentApplier
from workers.apply.guard import DeletionGuard
from workers.apply.mapping import GroupRef, Namespace, Operation, user_resource
from workers.apply.scope import ScopedSource
from workers.apply.writes import AppliedOps, ScimWriter, Vanished, Written
from workers.scim.target import Resource, ScimTarget
from workers.store.ledger_in_memory import MemoryLedger
from workers.store.target_ledger import Known, TargetLedger
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
        ledger: TargetLedger | None = None,
    ) -> None:
        """`ledger`: the target's ledger in the store (a private one in this process if none:
        unit tests)."""
        self._ns = ns
        self._settings = scim
        self._target = target
        self._source = source
        self._writer = ScimWriter(ns, target, guard, ledger or MemoryLedger())
        # What the applier reads goes through the target's scope (docs/mapping.md); the
        # unscoped source stays for the full sync's walk and the resolver.
        self._scoped = ScopedSource(source, scim.scope)
        self._reads_custom = scim.reads_custom  # decided once: it is asked of every user event
        self._departments = DepartmentApplier(self._writer, self._scoped, scim)

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
    def scoped(self) -> ScopedSource:
        return self._scoped

    @property
    def user_delete(self) -> str:
        return self._settings.user_delete

    async def apply(self, event: ContactEvent, deletions_approved: bool = False) -> AppliedOps:
        """Bring the event's entity to the source's state. Deactivations and deletions pass the
        mass-deletion guard first, unless an operator approved them (`Held` otherwise)."""
        ops = AppliedOps()
        try:
            try:
                await self._apply_entity(event, ops, deletions_approved)
            except Vanished as gone:
                # Deleted by hand on the target; the ledger forgot it: once more, finding or
                # creating it again. Gone a second time, it is retried later like any outage.
                attempts.note(str(gone))
                self._writer.end_deletion_turn(ops)  # the guard is asked again, if need be
                await self._apply_entity(event, ops, deletions_approved)
            if ops.deleted:
                await self._writer.record_deletion(ops.deleted)
        finally:
            self._writer.end_deletion_turn(ops)
        return ops

    async def _apply_entity(self, event: ContactEvent, ops: AppliedOps, approved: bool) -> None:
        if event.entity == "user":
            await self._apply_user(event, ops, approved)
        else:
            await self._departments.apply(event, ops, approved)

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

    async def read_footprint(self) -> tuple[list[Resource], list[Resource]]:
        return await self._writer.read_footprint()

    async def change_members(
        self, group_id: str, add: list[dict[str, str]], remove: list[str]
    ) -> None:
        await self._writer.change_members(group_id, add, remove)

    @property
    def ledger(self) -> TargetLedger:
        return self._writer.ledger

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
        user = None
        if event.change == "created" and self._complete(event):
            user = user_from_attributes(event.attributes)
        if user is None:
            user = await self._scoped.get_user(userid)
        else:
            user = await self._scoped.user(user)
        if user is None:  # gone at the source, or out of this target's scope
            await self._deprovision(userid, ops, approved)
        else:
            await self.upsert_user(user, ops, approved)

    def _complete(self, event: ContactEvent) -> bool:
        """Whether the event carries all this target reads: a callback never carries the
        custom fields a mapping or a scope may read (a directory record does)."""
        return "custom" in event.attributes or not self._reads_custom

    async def upsert_user(
        self, user: SourceUser, ops: AppliedOps, deletions_approved: bool = False
    ) -> None:
        refs: dict[str, GroupRef] = {}
        for department_id in user.departments:
            ref = await self._departments.ensure(department_id, ops, depth=0)
            if ref is not None:
                refs[department_id] = ref
        main = refs.get(user.main_department or NO_PARENT) or next(iter(refs.values()), None)
        manager_id = await self._manager_id(user)
        desired = user_resource(user, self._ns, main.name if main else None, manager_id)
        current = await self._locate_user(user.userid, str(desired.get("userName", "")))
        if current is None:
            user_id = str(
                (await self._writer.create_resource("Users", desired, ops)).resource["id"]
            )
        else:
            user_id = current.scim_id
            if current.written.get("active") is not False and not user.active:
                # Disabled at the source: a deactivation like a leaver's, so guarded like one.
                await self._writer.admit_deletion(
                    "user", f"deactivating user {user.userid}", deletions_approved, ops
                )
                ops.deleted = "user"
            await self._writer.update("Users", current, desired, ops)
        await self._sync_memberships(user_id, {ref.id for ref in refs.values()}, ops)

    async def _deprovision(self, userid: str, ops: AppliedOps, approved: bool) -> None:
        """Leaver: out of every department Group, then deactivated (or deleted by policy)."""
        current = await self._locate_user(userid)
        if current is None:
            ops.skip_reason = "gone at the source and not on the target"
            return
        deleting = self._settings.user_delete == "delete"
        active = current.written.get("active") is not False
        if deleting or active:
            what = f"deprovisioning user {userid}"
            await self._writer.admit_deletion("user", what, approved, ops)
            ops.deleted = "user"
        await self._sync_memberships(current.scim_id, set(), ops)
        if deleting:
            await self._writer.delete("Users", current, ops)
        elif active:
            await self._deactivate(current, ops)

    async def _rename(self, old: str, new: str, ops: AppliedOps) -> None:
        """WeCom NewUserID: move externalId and userName, keeping the resource and its groups."""
        current, taken = await self._locate_user(old), await self._locate_user(new)
        if current is not None and taken is not None:
            # An event for the new id was applied first (another partition) and created it
            # from the source. The old resource stands for an id that no longer exists: retire
            # it like a leaver. Not counted by the deletion guard: nobody left.
            await self._sync_memberships(current.scim_id, set(), ops)
            if current.written.get("active") is not False:
                await self._deactivate(current, ops)
            return
        if current is None:
            ops.skip_reason = f"rename {old} -> {new}: already done, or {old} was never synced"
            return
        patch: list[Operation] = [
            {"op": "replace", "path": "externalId", "value": self._ns.user(new)},
            {"op": "replace", "path": "userName", "value": self._ns.user_name(new)},
        ]
        if self._ns.maps_user_name:  # the mapping's userName comes with the update that follows
            patch = patch[:1]
        await self._writer.patch_known("Users", current, patch, ops)

    async def _deactivate(self, current: Known, ops: AppliedOps) -> None:
        patch: list[Operation] = [{"op": "replace", "path": "active", "value": False}]
        await self._writer.patch_known("Users", current, patch, ops)

    async def _manager_id(self, user: SourceUser) -> str | None:
        if not user.direct_leaders:
            return None
        leader = await self._writer.locate("Users", self._ns.user(user.direct_leaders[0]))
        return leader.scim_id if leader else None

    async def find_user(self, userid: str, user_name: str = "") -> Resource | None:
        """The user on the target (the ledger's, else matched on externalId, then userName,
        adopting a user we did not create), as last written, with its id."""
        known = await self._locate_user(userid, user_name)
        return None if known is None else {**known.written, "id": known.scim_id}

    async def _locate_user(self, userid: str, user_name: str = "") -> Known | None:
        """`user_name`: the user's userName where known; a mapped one depends on more than the
        userid, so without it the user is found by externalId alone."""
        if not user_name and not self._ns.maps_user_name:
            user_name = self._ns.user_name(userid)
        return await self._writer.locate("Users", self._ns.user(userid), user_name or None)

    async def _sync_memberships(self, user_id: str, wanted: set[str], ops: AppliedOps) -> None:
        """Adds and removes against the Groups the ledger says hold the user (a user adopted
        from the target has none there yet: the adds are idempotent, nothing is removed)."""
        held = await self._writer.department_groups_holding(user_id)
        for group_id in held - wanted:
            await self._writer.remove_member(group_id, user_id, ops)
        for group_id in wanted - held:
            await self._writer.add_member(group_id, user_id, "User", ops)
