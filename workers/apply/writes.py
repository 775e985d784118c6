"""The SCIM writes an applier makes, with what each one did, for the log and the history.

Every write goes through the target's ledger (workers/store/target_ledger.py): a resource is
found there before the target is asked, patched by diffing against what was last written, and
created under a claim so that no two processes create it. A 404 on a ledger id means someone
deleted the resource by hand: the ledger forgets it and the event is applied again (`Vanished`),
which looks it up once and creates it if it is really gone. Every deactivation or deletion
passes the deletion guard first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from workers import attempts
from workers.apply.footprint import read_footprint
from workers.apply.guard import DeletionGuard, Kind
from workers.apply.mapping import (
    Namespace,
    Operation,
    owned_part,
    resource_patch,
    with_operations,
)
from workers.errors import ScimRejected, ScimUnavailable
from workers.scim.target import Resource, ScimTarget, filter_eq
from workers.store.target_ledger import Known, TargetLedger

_PRECONDITION_ATTEMPTS: Final = 3
_CLAIM_ROUNDS: Final = 3


class Vanished(ScimUnavailable):
    """A resource the ledger knew is gone from the target (deleted by hand): forgotten, so
    applying the event again finds or creates it. Retryable wherever it escapes."""


@dataclass
class AppliedOps:
    """The SCIM writes one event caused, for the log and the sync history, and why there were
    none when there were none."""

    writes: list[str] = field(default_factory=list)
    deleted: Kind | None = None  # a user deactivated or deleted, or a department deleted
    created: bool = False  # a resource was created (not adopted on 409)
    skip_reason: str = "the target already matches the source"
    deletion_turn: bool = False  # holds the tenant's deletion turn (ScimWriter.admit_deletion)

    def add(self, method: str, what: str) -> None:
        self.writes.append(f"{method} {what}")


@dataclass(frozen=True)
class Written:
    """A resource `create_resource` made (`created`), or an existing one it adopted."""

    resource: Resource
    created: bool


class ScimWriter:
    """One tenant's writes to its SCIM target, and the target's ledger they keep true."""

    def __init__(
        self,
        ns: Namespace,
        target: ScimTarget,
        guard: DeletionGuard | None,
        ledger: TargetLedger,
    ) -> None:
        self.ns = ns
        self.target = target
        self.ledger = ledger
        self._guard = guard
        self._deletion_turn = asyncio.Lock()  # the guard's count and its record, together
        self._adopting = asyncio.Lock()

    async def admit_deletion(self, kind: Kind, what: str, approved: bool, ops: AppliedOps) -> None:
        """Raise `Held` when the guard holds this deletion (unless an operator approved it).
        A tenant's entities are applied side by side: from here until the applier has recorded
        the deletion (`end_deletion_turn`), no other of its deletions is counted."""
        if self._guard is None or approved:
            return
        await self._deletion_turn.acquire()
        ops.deletion_turn = True

        async def population() -> int:
            """The tenant's users (deactivated ones included) or departments on the target,
            as the ledger knows them (the reconcile lists the target in full)."""
            if kind == "user":
                return await self.ledger.count("Users", self.ns.user_prefix)
            return await self.ledger.count("Groups", self.ns.department_prefix)

        await self._guard.admit(self.ns.tenant, kind, what, population)

    async def record_deletion(self, kind: Kind) -> None:
        if self._guard is not None:
            await self._guard.record(self.ns.tenant, kind)

    def end_deletion_turn(self, ops: AppliedOps) -> None:
        if ops.deletion_turn:
            ops.deletion_turn = False
            self._deletion_turn.release()

    # ---- finding ------------------------------------------------------------------------

    async def locate(
        self, kind: str, external_id: str, user_name: str | None = None
    ) -> Known | None:
        """The resource from the ledger, which knows the tenant's whole footprint on the
        target: the first time a process needs it, the target is read once in full
        (`read_footprint`) and what is there adopted. What the ledger does not know is new:
        no lookup (a create that meets a 409 still adopts, by externalId, then `user_name`)."""
        known = await self.ledger.known(external_id)
        if known is not None:
            return known
        prefix = self.ns.user_prefix if kind == "Users" else self.ns.department_prefix
        if not await self.ledger.complete(prefix):
            async with self._adopting:  # once per process, whoever asks first
                if not await self.ledger.complete(prefix):
                    await self.read_footprint()
            known = await self.ledger.known(external_id)
        return known

    async def read_footprint(self) -> tuple[list[Resource], list[Resource]]:
        return await read_footprint(self.target, self.ledger, self.ns)

    async def _looked_up(self, kind: str, external_id: str, user_name: str | None) -> Known | None:
        found = await self.target.find_one(kind, filter_eq("externalId", external_id))
        if found is None and user_name is not None:
            found = await self.target.find_one(kind, filter_eq("userName", user_name))
            owner = found.get("externalId") if found else None
            if owner and owner != external_id:
                raise ScimRejected(
                    409, "uniqueness", f"userName {user_name!r} belongs to {owner!r}"
                )
        if found is None:
            return None
        known = Known(str(found["id"]), owned_part(found))
        await self.ledger.remember(external_id, kind, known.scim_id, known.written)
        return known

    # ---- resources ----------------------------------------------------------------------

    async def create_resource(self, kind: str, desired: Resource, ops: AppliedOps) -> Written:
        """POST under a claim in the ledger: if another process holds the claim, wait for its
        id and patch that instead; on 409 (made meanwhile, or before the ledger existed) adopt
        the resource with that externalId."""
        external_id = str(desired["externalId"])
        for _ in range(_CLAIM_ROUNDS):
            claimed = await self.ledger.claim(external_id, kind)
            if claimed is None:
                known = await self.ledger.wait_for(external_id)
                if known is None:
                    continue  # the claim lapsed: try to claim it ourselves
                try:
                    await self.update(kind, known, desired, ops)
                except Vanished:
                    continue  # the ledger's id was stale, and is forgotten now: create it
                return Written({**desired, "id": known.scim_id}, created=False)
            if claimed == "lapsed":  # its creator died, perhaps after its POST got through
                user_name = str(desired["userName"]) if kind == "Users" else None
                known = await self._looked_up(kind, external_id, user_name)
                if known is not None:
                    await self.update(kind, known, desired, ops)
                    return Written({**desired, "id": known.scim_id}, created=False)
            try:
                created = await self.target.create(kind, desired)
            except ScimRejected as exc:
                if exc.status != 409:
                    await self.ledger.release(external_id)
                    raise
                return await self._adopt(kind, desired, exc, ops)
            except BaseException:
                await self.ledger.release(external_id)
                raise
            await self.ledger.remember(external_id, kind, str(created["id"]), desired)
            ops.add("POST", f"/{kind} {external_id}")
            ops.created = True
            return Written(created, created=True)
        raise ScimUnavailable(f"{kind} {external_id}: another worker keeps claiming its creation")

    async def _adopt(
        self, kind: str, desired: Resource, conflict: ScimRejected, ops: AppliedOps
    ) -> Written:
        external_id = str(desired["externalId"])
        await self.ledger.release(external_id)
        user_name = str(desired["userName"]) if kind == "Users" else None
        # The ledger did not know it: as `locate` would have, by externalId, then userName.
        known = await self._looked_up(kind, external_id, user_name)
        if known is None:
            raise conflict
        await self.update(kind, known, desired, ops)
        return Written({**desired, "id": known.scim_id}, created=False)

    async def update(self, kind: str, known: Known, desired: Resource, ops: AppliedOps) -> None:
        """PATCH what differs between what was last written and `desired`; nothing (and no
        request) when they agree."""
        operations = resource_patch(kind, known.written, desired, self.ns)
        await self.patch_known(kind, known, operations, ops)

    async def patch_known(
        self, kind: str, known: Known, operations: list[Operation], ops: AppliedOps
    ) -> None:
        if not operations:
            return
        external_id = str(known.written.get("externalId", ""))
        await self._patch_or_forget(kind, known.scim_id, external_id, operations)
        written = with_operations(known.written, operations)
        renamed = str(written.get("externalId", external_id))
        if renamed != external_id:
            await self.ledger.rekey(external_id, renamed)
        await self.ledger.remember(renamed, kind, known.scim_id, written)
        paths = ",".join(str(o.get("path", "")) for o in operations)
        ops.add("PATCH", f"/{kind}/{known.scim_id} {paths}")

    async def delete(self, kind: str, known: Known, ops: AppliedOps) -> None:
        await self.target.delete(kind, known.scim_id)  # a 404 is fine: it is gone either way
        await self.ledger.forget(str(known.written.get("externalId", "")))
        ops.add("DELETE", f"/{kind}/{known.scim_id}")

    async def patch_resource(
        self,
        kind: str,
        current: Resource,
        diff: Callable[[Resource], Sequence[Operation]],
        ops: AppliedOps,
    ) -> None:
        """PATCH what `diff` finds between a resource just read from the target and the wanted
        state (the reconcile's way), conditional on its version where the target has ETags. On
        412 someone changed it meanwhile: read it again and diff again (a bounded number of
        times). The ledger then holds the result."""
        for attempt in range(_PRECONDITION_ATTEMPTS):
            operations = list(diff(current))
            if not operations:
                return
            version = (current.get("meta") or {}).get("version")
            try:
                await self.target.patch(kind, current["id"], operations, version)
            except ScimRejected as exc:
                if exc.status != 412 or attempt == _PRECONDITION_ATTEMPTS - 1:
                    raise
                attempts.note(f"{kind}/{current['id']}: 412, changed meanwhile; diffed again")
                current = await self.target.get(kind, current["id"])
                continue
            written = with_operations(owned_part(current), operations)
            await self.ledger.remember(
                str(written.get("externalId", "")), kind, str(current["id"]), written
            )
            paths = ",".join(str(o.get("path", "")) for o in operations)
            ops.add("PATCH", f"/{kind}/{current['id']} {paths}")
            return

    # ---- memberships --------------------------------------------------------------------

    async def department_groups_holding(self, member_id: str) -> set[str]:
        """The Groups orgstream put this member in, from the ledger: never read back."""
        return await self.ledger.groups_holding(member_id)

    async def add_member(self, group_id: str, member_id: str, kind: str, ops: AppliedOps) -> None:
        value = [{"value": member_id, "type": kind}]
        operations = [{"op": "add", "path": "members", "value": value}]
        # Written down once on the target: a process killed before that leaves its record
        # uncommitted, and the record applied again sends the add again.
        await self._member_change(group_id, operations[0])
        await self.ledger.members_changed(group_id, [member_id], [])
        ops.add("PATCH", f"/Groups/{group_id} +{kind} {member_id}")

    async def remove_member(self, group_id: str, member_id: str, ops: AppliedOps) -> None:
        path = f"members[{filter_eq('value', member_id)}]"
        try:
            await self._member_change(group_id, {"op": "remove", "path": path})
        except ScimRejected as exc:
            if exc.scim_type != "noTarget":
                raise
            # Taken out by hand already (the ledger still had it): what we wanted.
        await self.ledger.members_changed(group_id, [], [member_id])
        ops.add("PATCH", f"/Groups/{group_id} -{member_id}")

    async def change_members(
        self, group_id: str, add: list[dict[str, str]], remove: list[str]
    ) -> None:
        """A chunked membership diff (the reconcile's), kept in the ledger."""
        await self.target.change_members(group_id, add, remove)
        await self.ledger.members_changed(group_id, [a["value"] for a in add], remove)

    async def _member_change(self, group_id: str, operation: Operation) -> None:
        """Through the target's batcher: one PATCH for the concurrent records' changes."""
        change = self.target.memberships.change(group_id, operation)
        await self._unless_gone("Groups", group_id, "a Group", change)

    async def _patch_or_forget(
        self, kind: str, scim_id: str, external_id: str | None, operations: list[Operation]
    ) -> None:
        patch = self.target.patch(kind, scim_id, operations)
        await self._unless_gone(kind, scim_id, external_id or "a Group", patch)

    async def _unless_gone(
        self, kind: str, scim_id: str, label: str, request: Awaitable[None]
    ) -> None:
        """Send `request`; a 404 means the resource was deleted by hand: the ledger forgets
        it, and `Vanished` has the event applied again."""
        try:
            await request
        except ScimRejected as exc:
            if exc.status != 404:
                raise
            await self.ledger.forget_id(scim_id)
            raise Vanished(f"{kind}/{scim_id} ({label}) is gone from the target") from exc
