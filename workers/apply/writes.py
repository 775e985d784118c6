"""The SCIM writes an applier makes, with what each one did, for the log and the history.

Creating adopts on 409 (another writer won the race), patching is conditional on the version
where the target has ETags, and every deactivation or deletion passes the deletion guard first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from workers import attempts
from workers.apply.guard import DeletionGuard, Kind
from workers.apply.mapping import Namespace, Operation, group_patch, user_patch
from workers.errors import ScimRejected
from workers.scim.target import Resource, ScimTarget, filter_eq, scim_filter

_PRECONDITION_ATTEMPTS: Final = 3


@dataclass
class AppliedOps:
    """The SCIM writes one event caused, for the log and the sync history, and why there were
    none when there were none."""

    writes: list[str] = field(default_factory=list)
    deleted: Kind | None = None  # a user deactivated or deleted, or a department deleted
    created: bool = False  # a resource was created (not adopted on 409)
    skip_reason: str = "the target already matches the source"

    def add(self, method: str, what: str) -> None:
        self.writes.append(f"{method} {what}")


@dataclass(frozen=True)
class Written:
    """A resource `create_resource` made (`created`), or an existing one it adopted."""

    resource: Resource
    created: bool


class ScimWriter:
    """One tenant's writes to its SCIM target."""

    def __init__(self, ns: Namespace, target: ScimTarget, guard: DeletionGuard | None) -> None:
        self.ns = ns
        self.target = target
        self._guard = guard

    async def admit_deletion(self, kind: Kind, what: str, approved: bool) -> None:
        """Raise `Held` when the guard holds this deletion (unless an operator approved it)."""
        if self._guard is None or approved:
            return

        async def population() -> int:
            """The tenant's users (deactivated ones included) or departments on the target."""
            if kind == "user":
                prefix, resource = self.ns.user(""), "Users"
            else:
                prefix, resource = self.ns.department_prefix, "Groups"
            return await self.target.count(resource, scim_filter("externalId", "sw", prefix))

        await self._guard.admit(self.ns.tenant, kind, what, population)

    async def record_deletion(self, kind: Kind) -> None:
        if self._guard is not None:
            await self._guard.record(self.ns.tenant, kind)

    async def department_groups_holding(self, member_id: str) -> set[str]:
        groups = await self.target.find(
            "Groups", filter_eq("members.value", member_id), excluded="members"
        )
        prefix = self.ns.department_prefix
        return {g["id"] for g in groups if str(g.get("externalId", "")).startswith(prefix)}

    async def add_member(self, group_id: str, member_id: str, kind: str, ops: AppliedOps) -> None:
        value = [{"value": member_id, "type": kind}]
        await self.target.patch(
            "Groups", group_id, [{"op": "add", "path": "members", "value": value}]
        )
        ops.add("PATCH", f"/Groups/{group_id} +{kind} {member_id}")

    async def remove_member(self, group_id: str, member_id: str, ops: AppliedOps) -> None:
        path = f"members[{filter_eq('value', member_id)}]"
        await self.target.patch("Groups", group_id, [{"op": "remove", "path": path}])
        ops.add("PATCH", f"/Groups/{group_id} -{member_id}")

    async def create_resource(self, kind: str, desired: Resource, ops: AppliedOps) -> Written:
        """POST; on 409 another writer won the race: adopt its resource and patch it instead."""
        try:
            created = await self.target.create(kind, desired)
        except ScimRejected as exc:
            if exc.status != 409:
                raise
            existing = await self.target.find_one(
                kind, filter_eq("externalId", desired["externalId"])
            )
            if existing is None:
                raise
            patch = user_patch if kind == "Users" else group_patch
            await self.patch_resource(kind, existing, lambda now: patch(now, desired), ops)
            return Written(existing, created=False)
        ops.add("POST", f"/{kind} {desired['externalId']}")
        ops.created = True
        return Written(created, created=True)

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
                await self.target.patch(kind, current["id"], operations, version)
            except ScimRejected as exc:
                if exc.status != 412 or attempt == _PRECONDITION_ATTEMPTS - 1:
                    raise
                attempts.note(f"{kind}/{current['id']}: 412, changed meanwhile; diffed again")
                current = await self.target.get(kind, current["id"])
                continue
            paths = ",".join(str(o.get("path", "")) for o in operations)
            ops.add("PATCH", f"/{kind}/{current['id']} {paths}")
            return
