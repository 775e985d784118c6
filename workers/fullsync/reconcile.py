"""Bring one tenant's whole footprint on the SCIM target to a snapshot of its directory.

The bulk counterpart of `TenantApplier`, for a full sync: it reads the tenant's Users and
Groups once (by externalId prefix), diffs them against the snapshot with the same mapping, and
writes only what differs, several writes at a time:

1. department Groups, parents before children (a child needs its parent's id and path);
2. users, created or patched; a user disabled at the source goes through the applier, so the
   mass-deletion guard sees it;
3. managers whose leader was created in step 2;
4. memberships, as one chunked diff per Group;
5. what the target holds but the source no longer has: each goes through the applier as an
   event, so it is read at the source once more, passes the guard, and is held if the guard
   says so.

Entities in `skip` are left alone: a callback about them arrived during the walk, and the event
path owns them (see `full_sync`). Nothing here deletes anything the tenant does not own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Literal, cast

import orjson

from schemas.event import ContactEvent, make_event_id, utc_iso
from schemas.record import NO_PARENT
from schemas.topics import entity_key
from schemas.types import Entity, Vendor
from workers.apply.applier import AppliedOps, TenantApplier
from workers.apply.mapping import (
    GroupRef,
    Namespace,
    group_patch,
    group_resource,
    user_patch,
    user_resource,
)
from workers.apply.scope import scoped_snapshot
from workers.concurrency import gather_bounded
from workers.errors import DeadLetter, DependencyMissing, Held, ScimRejected
from workers.fullsync.counts import SyncCounts
from workers.scim.target import Resource
from workers.vendors.source import SourceDepartment, SourceUser
from workers.vendors.walk import Progress, Snapshot

# SCIM writes in flight; scim2-server and most IdPs take a handful of concurrent writers well.
WRITE_CONCURRENCY: Final = 8

Effect = Literal["created", "updated", "unchanged"]
_RANK: Final[dict[Effect, int]] = {"unchanged": 0, "updated": 1, "created": 2}
HoldEvent = Callable[[ContactEvent, str], Awaitable[None]]
ConfirmGone = Callable[[Entity, str], Awaitable[None]]


class Reconciler:
    def __init__(
        self,
        applier: TenantApplier,
        snapshot: Snapshot,
        run_id: str,
        skip: frozenset[str] = frozenset(),
        hold: HoldEvent | None = None,
        progress: Progress | None = None,
        confirm: ConfirmGone | None = None,
    ) -> None:
        """`confirm`: for what the target holds and the applier's source has never heard of
        (the mirror, with the feed on): ask for it to be confirmed gone instead of failing."""
        self._confirm = confirm
        self._applier = applier
        self._target = applier.target
        self._ns = applier.namespace
        # What the target's scope leaves out is, for this target, gone at the source: step 5
        # deprovisions it through the applier (which sees it out of scope too), guarded.
        self._snapshot = scoped_snapshot(applier.scoped.scope, snapshot)
        self._run_id = run_id
        self._skip = skip
        self._hold = hold
        self._progress = progress or (lambda step, done, total: None)
        self.counts = SyncCounts()
        self._effects: dict[str, Effect] = {}
        self._groups: dict[str, Resource] = {}  # department id -> its Group on the target
        self._users: dict[str, Resource] = {}  # userid -> its User on the target
        self._refs: dict[str, GroupRef] = {}
        self._waiting_for_manager: dict[str, SourceUser] = {}
        self._deferred: set[str] = set()
        self._grouped: set[str] = set()  # target ids of members of this tenant's Groups

    async def run(self) -> SyncCounts:
        await self._read_target()
        listed_groups, listed_users = list(self._groups), list(self._users)
        self._grouped = {
            str(m.get("value")) for g in self._groups.values() for m in g.get("members", [])
        }
        await self._departments()
        await self._each(self._snapshot.users.values(), self._user, "users")
        await self._each(list(self._waiting_for_manager.values()), self._user, "managers")
        await self._memberships()
        gone_users = [u for u in listed_users if u not in self._snapshot.users]
        gone_groups = [d for d in listed_groups if d not in self._snapshot.departments]
        await self._each(gone_users, self._gone_user, "leavers")
        await self._each(gone_groups, self._gone_department, "departments gone")
        for key, effect in self._effects.items():
            if key not in self._deferred:
                setattr(self.counts, effect, getattr(self.counts, effect) + 1)
        self.counts.deferred = len(self._deferred)
        return self.counts

    # ---- reading ----------------------------------------------------------------------------

    async def _read_target(self) -> None:
        """The tenant's footprint, read in full (every page: few targets filter on `sw`); the
        target's ledger learns it (drift repaired on the ledger's side)."""
        groups, users = await self._applier.read_footprint()
        prefix = self._ns.department_prefix
        self._groups = {str(g["externalId"])[len(prefix) :]: g for g in groups}
        self._users = {str(u["externalId"])[len(self._ns.user_prefix) :]: u for u in users}

    # ---- 1. departments, parents first ------------------------------------------------------

    async def _departments(self) -> None:
        for level in _levels(self._snapshot.departments):
            await self._each(level, self._department, "departments")

    async def _department(self, department: SourceDepartment) -> None:
        key = entity_key("department", str(department.id))
        current = self._groups.get(department.id)
        parent = None
        if department.parent_id in self._snapshot.departments:
            parent = self._refs.get(department.parent_id)
            if parent is None:  # its parent was deferred and is not on the target yet
                self._defer(key)
                return
        mode = await self._applier.department_mode()
        path = f"{parent.path if parent else ''}/{department.id}"
        display = department.name
        if mode == "flat" and parent is not None:
            display = f"{parent.display_name}/{department.name}"
        if key in self._skip:
            self._defer(key)
            if current is not None:  # children still place themselves under it
                self._refs[department.id] = GroupRef(current["id"], department.name, display, path)
            return
        desired = group_resource(
            department, self._ns, display, parent, path, with_extension=mode == "extension"
        )
        ops = AppliedOps()
        if current is None:
            await self._applier.ledger.forget(desired["externalId"])  # not listed: gone
            current = (await self._applier.create_resource("Groups", desired, ops)).resource
            current.setdefault("members", [])
            self._groups[department.id] = current
        else:
            await self._applier.patch_resource(
                "Groups", current, lambda now: group_patch(now, desired), ops
            )
        self._note(key, ops)
        self._refs[department.id] = GroupRef(current["id"], department.name, display, path)

    # ---- 2, 3. users and their managers ----------------------------------------------------

    async def _user(self, user: SourceUser) -> None:
        key = entity_key("user", user.userid)
        if key in self._skip:
            self._defer(key)
            return
        current = self._users.get(user.userid)
        if current is not None and current.get("active") is not False and not user.active:
            await self._through_applier("user", user.userid)  # disabled at the source: guarded
            return
        refs = {d: self._refs[d] for d in user.departments if d in self._refs}
        main = refs.get(user.main_department or NO_PARENT) or next(iter(refs.values()), None)
        manager_id = self._manager_id(user)
        leader = user.direct_leaders[0] if user.direct_leaders else None
        if manager_id is None and leader in self._snapshot.users:  # created later in this run
            self._waiting_for_manager.setdefault(user.userid, user)
        desired = user_resource(user, self._ns, main.name if main else None, manager_id)
        ops = AppliedOps()
        if current is None:
            current = await self._create_user(user.userid, desired, ops)
        else:
            await self._applier.patch_resource(
                "Users", current, lambda now: user_patch(now, desired, self._ns), ops
            )
        self._users[user.userid] = current
        self._note(key, ops)

    async def _create_user(self, userid: str, desired: Resource, ops: AppliedOps) -> Resource:
        """POST; a 409 with no externalId match is a user made by hand with this userName:
        adopt it (as the event path does) unless another directory owns it."""
        await self._applier.ledger.forget(desired["externalId"])  # not listed: gone
        try:
            return (await self._applier.create_resource("Users", desired, ops)).resource
        except ScimRejected as exc:
            user_name = str(desired.get("userName", ""))
            found = await self._applier.find_user(userid, user_name) if exc.status == 409 else None
            if found is None:
                raise
        await self._applier.patch_resource(
            "Users", found, lambda now: user_patch(now, desired, self._ns), ops
        )
        return found

    def _manager_id(self, user: SourceUser) -> str | None:
        if not user.direct_leaders:
            return None
        leader = self._users.get(user.direct_leaders[0])
        return str(leader["id"]) if leader else None

    # ---- 4. memberships -------------------------------------------------------------------

    async def _memberships(self) -> None:
        """One diff per Group. Only members this tenant owns are managed: users of the snapshot
        and, in nested mode, child Groups. Leavers' memberships are step 5's (guarded); anyone
        else's (added by hand, another tenant's) are left alone."""
        nested = await self._applier.department_mode() == "nested"
        userid_of = {str(r["id"]): userid for userid, r in self._users.items()}
        department_of = {str(g["id"]): d for d, g in self._groups.items()}
        wanted: dict[str, dict[str, str]] = defaultdict(dict)  # group -> {member id: type}
        for user in self._snapshot.users.values():
            resource = self._users.get(user.userid)
            if resource is None or entity_key("user", user.userid) in self._skip:
                continue
            for department_id in user.departments:
                if department_id in self._refs:
                    wanted[department_id][str(resource["id"])] = "User"
        if nested:
            for department in self._snapshot.departments.values():
                if department.id in self._refs and department.parent_id in self._refs:
                    wanted[department.parent_id][self._refs[department.id].id] = "Group"

        def managed(member_id: str) -> bool:
            userid = userid_of.get(member_id)
            if userid is not None:
                return userid in self._snapshot.users and (
                    entity_key("user", userid) not in self._skip
                )
            return nested and member_id in department_of

        async def one(department_id: str) -> None:
            group = self._groups[department_id]
            shown = "members" in group
            if shown:
                listed = {str(m["value"]) for m in group["members"]}
            else:  # a target that never shows members: what the ledger says we put there
                listed = await self._applier.ledger.members_of(str(group["id"]))
            have = {member_id for member_id in listed if managed(member_id)}
            want = wanted.get(department_id, {})
            # Where members cannot be read back, every wanted one is re-asserted (an `add` of
            # a member already there changes nothing): a member removed by hand comes back.
            add = [{"value": m, "type": t} for m, t in want.items() if m not in have or not shown]
            remove = sorted(have - set(want))
            if not add and not remove:
                return
            await self._applier.change_members(group["id"], add, remove)
            changed = [a["value"] for a in add if a["value"] not in have] + remove
            for member_id in changed:
                if member_id in userid_of:
                    self._mark(entity_key("user", userid_of[member_id]), "updated")

        await self._each(sorted(self._refs), one, "memberships")

    # ---- 5. gone at the source --------------------------------------------------------------

    async def _gone_user(self, userid: str) -> None:
        user = self._users[userid]
        deleting = self._applier.user_delete == "delete"
        if user.get("active") is False and str(user["id"]) not in self._grouped and not deleting:
            self._mark(entity_key("user", userid), "unchanged")  # deprovisioned already
            return
        await self._through_applier("user", userid)

    async def _gone_department(self, department_id: str) -> None:
        await self._through_applier("department", str(department_id))

    async def _through_applier(self, entity: Entity, entity_id: str) -> None:
        """Apply as an event would: read at the source again, guarded, held if it says so."""
        key = entity_key(entity, entity_id)
        if key in self._skip:
            self._defer(key)
            return
        event = self._event(entity, entity_id)
        try:
            ops = await self._applier.apply(event)
        except Held as exc:
            self.counts.held += 1
            if self._hold is not None:
                await self._hold(event, str(exc))
            return
        except DependencyMissing:
            if self._confirm is None:
                raise
            await self._confirm(entity, entity_id)  # the vendor decides, not the mirror's silence
            self.counts.confirming += 1
            return
        if ops.deleted == "user":
            deleted = self._applier.user_delete == "delete"
            self.counts.deleted += deleted
            self.counts.deactivated += not deleted
        elif ops.deleted == "department":
            self.counts.deleted += 1
        else:
            self._note(key, ops)

    def _event(self, entity: Entity, entity_id: str) -> ContactEvent:
        return synthetic_event(self._ns, entity, entity_id, self._run_id, "full-sync")

    # ---- bookkeeping ------------------------------------------------------------------------

    async def _each(
        self, items: Iterable[Any], call: Callable[[Any], Awaitable[None]], step: str
    ) -> None:
        """`call` on every item, a few at a time; a rejected write fails that entity only."""
        todo = list(items)
        done = 0

        async def guarded(item: Any) -> None:
            nonlocal done
            try:
                await call(item)
            except DeadLetter as exc:  # this entity only; transient failures fail the run
                self.counts.failed += 1
                self.counts.errors.append(f"{step} {_label(item)}: {exc}")
            done += 1
            if done % 200 == 0 or done == len(todo):
                self._progress(step, done, len(todo))

        await gather_bounded(todo, guarded, WRITE_CONCURRENCY)

    def _note(self, key: str, ops: AppliedOps) -> None:
        if ops.created:
            self._mark(key, "created")
        else:
            self._mark(key, "updated" if ops.writes else "unchanged")

    def _mark(self, key: str, effect: Effect) -> None:
        if _RANK[effect] >= _RANK[self._effects.get(key, "unchanged")]:
            self._effects[key] = effect

    def _defer(self, key: str) -> None:
        self._deferred.add(key)


def _levels(departments: dict[str, SourceDepartment]) -> list[list[SourceDepartment]]:
    """Departments by depth: roots (no parent in the snapshot) first, then their children."""
    children: dict[str, list[SourceDepartment]] = defaultdict(list)
    level = []
    for department in departments.values():
        if department.parent_id in departments and department.parent_id != department.id:
            children[department.parent_id].append(department)
        else:
            level.append(department)
    levels: list[list[SourceDepartment]] = []
    seen: set[str] = set()
    while level:
        levels.append(level)
        seen.update(d.id for d in level)
        level = [c for d in level for c in children[d.id] if c.id not in seen]
    return levels


def _label(item: Any) -> str:
    if isinstance(item, SourceUser):
        return f"user {item.userid}"
    if isinstance(item, SourceDepartment):
        return f"department {item.id}"
    return str(item)


def synthetic_event(
    ns: Namespace, entity: Entity, entity_id: str, run_id: str, why: str
) -> ContactEvent:
    """An event no vendor sent: "bring this entity to the source's state". `raw` says who made
    it, for the audit trail; the id is stable within a run, so a retry dedupes."""
    now = utc_iso(time.time())
    vendor = cast(Vendor, ns.vendor)
    identity = f"{why}:{run_id}:{entity}:{entity_id}".encode()
    return ContactEvent(
        event_id=make_event_id(vendor, ns.tenant, identity, 0),
        tenant=ns.tenant,
        vendor=vendor,
        entity=entity,
        entity_id=entity_id,
        change="updated",
        occurred_at=now,
        received_at=now,
        raw=orjson.dumps({"orgstream": why, "run": run_id}).decode(),
    )
