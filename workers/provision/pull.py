"""The pull mode (ArkID's "client mode", done properly): orgstream reads a SCIM server page by
page and makes the vendor equal to it, through the same path an IdP's pushes take (mapping,
guard, history, read-your-writes). `orgstream sync --tenant T --to-vendor [--dry-run]`.

Groups become departments, parents first, matched by the source Group's id (kept as the
department's externalId); users are matched by the userid the tenant's template makes of their
userName, and get exactly the departments of the Groups that list them (the root when none).
What orgstream wrote before and the source no longer has is undone: such users are
deactivated (guarded), such departments deleted once empty. Users and departments orgstream
did not write are left alone. A dry run reads and compares, and writes nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Final

import httpx
import orjson

from workers.directory.writes import WriteRequest
from workers.provision.errors import ProvisionError
from workers.provision.groups import group_name
from workers.provision.memberships import EVERY_TIME
from workers.provision.provisioner import Provisioner
from workers.provision.users import ROOT_DEPARTMENT, current_write, user_write, userid_for
from workers.store.directory_index import DirectoryIndex
from workers.store.directory_rows import GROUP, USER
from workers.store.mirror import Mirror

PAGE: Final = 100
CORE_GROUP: Final = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP: Final = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# The source's own ids, and its managers (ids of the source, not of the vendor): not pulled.
_NOT_PULLED: Final = (
    "id", "meta", "groups", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
)  # fmt: skip
Resource = dict[str, Any]


@dataclass
class PullReport:
    dry_run: bool
    changes: list[str] = field(default_factory=list)  # "create user alice", in order
    counts: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # what the vendor or the mapping refused

    def note(self, action: str, kind: str, name: str) -> None:
        self.changes.append(f"{action} {kind} {name}")
        self.counts[f"{kind}s {action}d"] += 1


class SourceError(Exception):
    """The source could not be read; nothing was written."""


async def read_all(source: httpx.AsyncClient, endpoint: str) -> list[Resource]:
    """Every resource of an endpoint, PAGE at a time, until the source's total is reached."""
    found: list[Resource] = []
    while True:
        try:
            answer = await source.get(
                endpoint, params={"startIndex": len(found) + 1, "count": PAGE}
            )
        except httpx.HTTPError as exc:
            raise SourceError(f"{endpoint}: {type(exc).__name__}") from exc
        if answer.status_code != 200:
            raise SourceError(f"{endpoint}: HTTP {answer.status_code}")
        try:
            page = answer.json()
        except ValueError as exc:
            raise SourceError(f"{endpoint}: the answer is not JSON") from exc
        if not isinstance(page, dict):
            raise SourceError(f"{endpoint}: the answer is not a ListResponse")
        resources = [r for r in page.get("Resources") or [] if isinstance(r, dict) and r.get("id")]
        found += resources
        if not resources or len(found) >= int(page.get("totalResults") or 0):
            return found


class Puller:
    def __init__(
        self,
        tenant: str,
        provisioner: Provisioner,
        index: DirectoryIndex,
        mirror: Mirror,
        userid_template: str,
        department_prefix: str,
        needs_mobile: bool,
    ) -> None:
        self._tenant = tenant
        self._provisioner = provisioner
        self._index = index
        self._mirror = mirror
        self._template = userid_template
        self._prefix = department_prefix
        self._needs_mobile = needs_mobile

    async def run(self, source: httpx.AsyncClient, dry_run: bool) -> PullReport:
        groups = await read_all(source, "Groups")
        users = await read_all(source, "Users")
        report = PullReport(dry_run)
        departments = await self._departments(groups, report)
        member_of: dict[str, list[str]] = defaultdict(list)
        for group in groups:
            for member in group.get("members") or []:
                if isinstance(member, dict) and group["id"] in departments:
                    member_of[str(member.get("value"))].append(departments[group["id"]])
        wanted = set()
        for user in users:
            resource = {k: v for k, v in user.items() if k not in _NOT_PULLED}
            resource["externalId"] = str(user.get("externalId") or user.get("id"))
            placed = tuple(dict.fromkeys(member_of.get(str(user.get("id")), [])))
            try:
                wanted.add(userid_for(self._template, resource))
                await self._user(resource, placed or (ROOT_DEPARTMENT,), report)
            except ProvisionError as error:
                report.refused.append(f"user {user.get('userName')!r}: {error.detail}")
        await self._undo(wanted, set(departments.values()), report)
        return report

    async def _departments(self, groups: list[Resource], report: PullReport) -> dict[str, str]:
        """Each source Group's department, parents first; made or renamed where needed."""
        known = {
            str(kept.get("externalId")): department
            for department, kept in (await self._index.idp_sources(self._tenant, GROUP)).items()
        }
        placed: dict[str, str] = {}
        named = []
        for group in groups:
            try:
                named.append((group_name(group, self._prefix), group))
            except ProvisionError as error:
                report.refused.append(f"group {group.get('displayName')!r}: {error.detail}")
        for name, group in sorted(named, key=lambda item: len(item[0].parents)):
            body = {"schemas": [CORE_GROUP], "displayName": group["displayName"],
                    "externalId": str(group["id"])}  # fmt: skip
            department = known.get(str(group["id"]))
            kept = await self._mirror.department(self._tenant, department) if department else None
            if kept is None:
                report.note("create", "department", str(group["displayName"]))
                if not report.dry_run:
                    made = await self._write(report, "POST", "Groups", None, body)
                    department = await self._source_id(GROUP, made)
            elif kept.name != name.name:
                report.note("update", "department", str(group["displayName"]))
                if not report.dry_run:
                    rename = {"op": "replace", "path": "displayName", "value": group["displayName"]}
                    scim_id = await self._scim_id(GROUP, department)
                    patch = {"schemas": [PATCH_OP], "Operations": [rename]}
                    await self._write(report, "PATCH", "Groups", scim_id, patch)
            if department is not None:
                placed[str(group["id"])] = department
        return placed

    async def _user(
        self, resource: Resource, departments: tuple[str, ...], report: PullReport
    ) -> None:
        userid = userid_for(self._template, resource)
        mirrored = await self._mirror.user(self._tenant, userid)
        name = str(resource.get("userName"))
        if mirrored is None:
            report.note("create", "user", name)
        else:
            current = current_write(mirrored)
            if set(departments) == set(current.departments):
                departments = current.departments  # the same, in the vendor's order
            main = current.main_department
            wanted = user_write(resource, userid, departments, main, None, self._needs_mobile)
            if replace(wanted, leaders=current.leaders) == current:  # a pull keeps leaders
                return
            report.note("update", "user", name)
        if report.dry_run:
            return
        answer = await self._provisioner.converge_user(resource, departments, "")
        if answer.status_code >= 400:
            report.refused.append(f"user {name!r}: {bytes(answer.body).decode(errors='replace')}")

    async def _undo(self, users: set[str], departments: set[str], report: PullReport) -> None:
        """What orgstream wrote before and the source no longer has."""
        for userid in sorted(await self._index.idp_sources(self._tenant, USER)):
            mirrored = await self._mirror.user(self._tenant, userid)
            if userid in users or mirrored is None or not mirrored.active:
                continue
            report.note("deactivate", "user", userid)
            if not report.dry_run:
                off = {"op": "replace", "path": "active", "value": False}
                await self._write(report, "PATCH", "Users", await self._scim_id(USER, userid),
                                  {"schemas": [PATCH_OP], "Operations": [off]})  # fmt: skip
        for department in sorted(await self._index.idp_sources(self._tenant, GROUP)):
            if (
                department in departments
                or await self._mirror.department(self._tenant, department) is None
            ):
                continue
            if await self._mirror.members(self._tenant, department):
                # Disabled users stay in their departments at WeCom: kept until they are gone.
                report.changes.append(f"keep department {department}: it still has members")
                continue
            report.note("delete", "department", department)
            if not report.dry_run:
                await self._write(
                    report, "DELETE", "Groups", await self._scim_id(GROUP, department), {}
                )

    async def _write(
        self, report: PullReport, method: str, endpoint: str, scim_id: str | None, body: Resource
    ) -> Resource:
        answer = await self._provisioner.write(WriteRequest(method, endpoint, scim_id, body, ""))
        text = bytes(answer.body).decode(errors="replace")
        if answer.status_code >= 400:
            report.refused.append(f"{method} {endpoint}: {text}")
            return {}
        loaded = orjson.loads(text) if text else {}
        return loaded if isinstance(loaded, dict) else {}

    async def _scim_id(self, kind: str, source_id: str | None) -> str | None:
        stored = await self._index.by_source(self._tenant, kind, source_id or "")
        return stored.scim_id if stored else None

    async def _source_id(self, kind: str, made: Resource) -> str | None:
        scim_id = made.get("id")
        if not isinstance(scim_id, str):
            return None
        stored = await self._index.get(self._tenant, kind, scim_id, EVERY_TIME)
        return stored.source_id if stored else None
