"""Records of the directory feed into the directory server's index, beside the mirror: each
user and department rendered as the SCIM mapping renders it (workers/apply/mapping.py), with
the id, hierarchy path and memberships the server serves.

A leaver stays as `active=false` in no Group (the server hides it after `leaver_days`); a
deleted department is gone. What a resource shows of another (a user's main department name,
a department's path from the root) is refreshed when the other changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import orjson

from schemas.config import Settings
from schemas.record import DepartmentState, DirectoryRecord, UserState
from workers.apply.mapping import GroupRef, Namespace, group_resource, user_resource
from workers.apply.records import source_user
from workers.directory.attributes import CASE_EXACT
from workers.directory.ids import group_id, user_id
from workers.directory.values import values_of
from workers.store.directory_index import DirectoryIndex
from workers.store.directory_rows import GROUP, USER
from workers.store.mirror import Mirror
from workers.vendors.source import SourceDepartment

_MAX_DEPTH: Final = 64  # deeper than any vendor allows; a loop in bad data stops here


def now_text() -> str:
    """The time as the index keeps it (UTC, microseconds, `Z`: text order is time order)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DirectoryIndexer:
    def __init__(self, index: DirectoryIndex, mirror: Mirror, settings: Settings) -> None:
        self._index = index
        self._mirror = mirror
        self._namespaces = {
            t.id: Namespace(t.vendor, t.corp_id, t.id, settings.scim_for(t).user_name)
            for t in settings.tenants
        }
        self._provisioned = {t.id for t in settings.tenants if t.provisioning is not None}

    async def apply(self, record: DirectoryRecord, repair: bool = False) -> None:
        """`repair`: the record was indexed before, but what follows from it (other resources
        showing it) may not have been: a crash may have come in between.

        The mirror may take a newer record of the entity while this one is indexed (the
        provisioning path writes it too): then the newer one is indexed after, so the index
        never ends behind the mirror."""
        await self._apply_once(record, repair)
        for _ in range(3):
            latest = await self._mirror.version(record.tenant, record.kind, record.id)
            if latest is None or latest <= record.version:
                return
            newer = await self._mirror.record(record.tenant, record.kind, record.id)
            if newer is None:
                return
            record = newer
            await self._apply_once(record, repair=True)

    async def _apply_once(self, record: DirectoryRecord, repair: bool) -> None:
        ns = self._namespaces.get(record.tenant)
        if ns is None:
            return  # a tenant no longer configured: nothing serves it
        if record.user is not None:
            await self._user(ns, record.user)
        elif record.department is not None:
            await self._department(ns, record.department, repair)
        elif record.kind == "user":
            await self._leaver(record.tenant, record.id, gone=record.renamed_to is not None)
        else:
            await self._index.remove(record.tenant, GROUP, record.id)

    async def _user(self, ns: Namespace, user: UserState) -> None:
        tenant, now = ns.tenant, now_text()
        main = None
        if user.main_department is not None:
            main = await self._mirror.department(tenant, user.main_department)
        leader = user_id(tenant, user.direct_leaders[0]) if user.direct_leaders else None
        resource = user_resource(source_user(user), ns, main.name if main else None, leader)
        scim_id = user_id(tenant, user.userid)
        groups = [group_id(tenant, m.department) for m in user.departments]
        await self._put(tenant, USER, user.userid, scim_id, user.name, resource, now, groups=groups)

    async def _leaver(self, tenant: str, userid: str, gone: bool) -> None:
        """Out of every Group; kept as inactive, unless the person lives on under a new
        userid (then the old id is simply gone)."""
        now = now_text()
        kept = await self._index.by_source(tenant, USER, userid)
        if kept is None:
            return
        await self._index.set_memberships(tenant, kept.scim_id, "", [], now)
        if gone:
            await self._index.remove(tenant, USER, userid)
            return
        resource: dict[str, Any] = orjson.loads(kept.resource)
        resource["active"] = False
        display = str(resource.get("displayName", ""))
        deleted_at = kept.deleted_at or now
        await self._put(tenant, USER, userid, kept.scim_id, display, resource, now, deleted_at)

    async def _department(
        self, ns: Namespace, department: DepartmentState, repair: bool = False
    ) -> None:
        tenant, now = ns.tenant, now_text()
        path, parent = await self._placement(tenant, department)
        source = SourceDepartment(
            department.id, department.name, department.parent_id, department.order
        )
        resource = group_resource(source, ns, department.name, parent, path, with_extension=True)
        key = str(department.id)
        before = await self._index.by_source(tenant, GROUP, key)
        scim_id = group_id(tenant, department.id)
        changed = await self._put(tenant, GROUP, key, scim_id, department.name, resource, now)
        if not (changed or repair):
            return
        old = orjson.loads(before.resource) if before else {}
        # What shows this department: its users (their main department's name, their
        # `groups`), and its children's paths, which a parent arriving late completes too.
        if repair or old.get("displayName") != resource["displayName"]:
            await self._refresh_members_of(ns, department.id, now)
        if repair or before is None or _path(old) != path:
            for child in await self._mirror.children(tenant, department.id):
                kept = await self._mirror.department(tenant, child)
                if kept is not None:
                    await self._department(ns, kept, repair)

    async def _refresh_members_of(self, ns: Namespace, department: str, now: str) -> None:
        """Users show their main department's name, and every department's in `groups`."""
        shown_only: list[str] = []
        for userid in await self._mirror.members(ns.tenant, department):
            user = await self._mirror.user(ns.tenant, userid)
            if user is not None and user.main_department == department:
                await self._user(ns, user)
            elif user is not None:
                shown_only.append(user_id(ns.tenant, userid))
        await self._index.touch(ns.tenant, USER, shown_only, now)

    async def _placement(
        self, tenant: str, department: DepartmentState
    ) -> tuple[str, GroupRef | None]:
        """The department's path of ids from the root, and its parent's Group."""
        ids = [department.id]
        parent_id, parent = department.parent_id, None
        while parent_id and len(ids) < _MAX_DEPTH and parent_id not in ids:
            above = await self._mirror.department(tenant, parent_id)
            ids.append(parent_id)
            if above is None:
                break
            parent_id = above.parent_id
        path = "/" + "/".join(str(i) for i in reversed(ids))
        if department.parent_id:
            parent_path = path.rsplit("/", 1)[0]
            parent = GroupRef(group_id(tenant, department.parent_id), "", "", parent_path)
        return path, parent

    async def _put(
        self,
        tenant: str,
        kind: str,
        source_id: str,
        scim_id: str,
        display: str,
        resource: dict[str, Any],
        now: str,
        deleted_at: str | None = None,
        groups: list[str] | None = None,
    ) -> bool:
        body = {"id": scim_id, **{k: v for k, v in resource.items() if k != "id"}}
        if tenant not in self._provisioned:
            return await self._write(tenant, kind, source_id, scim_id, display, body, now,
                                     deleted_at, groups)  # fmt: skip
        # What the IdP keeps may change while this record is indexed (its PATCH, in another
        # task or process): written again until what was merged is what is kept.
        kept = await self._index.idp_attributes(tenant, kind, source_id)
        changed = False
        for _ in range(3):
            merged = with_idp_attributes(body, kept)
            changed = (
                await self._write(
                    tenant, kind, source_id, scim_id, display, merged, now, deleted_at, groups
                )
                or changed
            )
            again = await self._index.idp_attributes(tenant, kind, source_id)
            if again == kept:
                break
            kept = again
        return changed

    async def _write(
        self,
        tenant: str,
        kind: str,
        source_id: str,
        scim_id: str,
        display: str,
        body: dict[str, Any],
        now: str,
        deleted_at: str | None,
        groups: list[str] | None,
    ) -> bool:
        return await self._index.put(
            tenant,
            kind,
            source_id,
            scim_id,
            display,
            orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode(),
            values_of(body, CASE_EXACT[kind]),
            now,
            deleted_at,
            groups,
        )


def with_idp_attributes(body: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    """What the IdP wrote over what the vendor holds; a complex attribute (`name`) merged one
    level down, so the vendor's `formatted` name stays beside the IdP's given and family name.
    A `null` hides the attribute (an IdP that set no externalId reads none back)."""
    merged = dict(body)
    for attribute, value in kept.items():
        inner = merged.get(attribute)
        if value is None:
            merged.pop(attribute, None)
        elif attribute in _AS_WRITTEN_WHILE_SAME:
            if _values(value) >= _values(inner):  # the vendor's values unchanged since
                merged[attribute] = value
        elif isinstance(value, dict) and isinstance(inner, dict):
            merged[attribute] = {**inner, **value}
        else:
            merged[attribute] = value
    return merged


# Lists the IdP wrote (with its types and primary flags) and the vendor keeps only the values
# of: served as written while the vendor's values are among them, the vendor's once they differ.
_AS_WRITTEN_WHILE_SAME: Final = frozenset({"emails", "phoneNumbers"})


def _values(items: Any) -> set[str]:
    if not isinstance(items, list):
        return set()
    return {str(i.get("value")) for i in items if isinstance(i, dict)}


def _path(resource: dict[str, Any]) -> Any:
    extension: Any = next((v for k, v in resource.items() if k.startswith("urn:")), {})
    return extension.get("path") if isinstance(extension, dict) else None
