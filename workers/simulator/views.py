"""Both directories in one comparable shape: the simulator's (the truth) and the SCIM target's.

A user is (name, active, title, email, department ids); a department is (name, parent id).
Users deleted at the source must be on the target too, deactivated and in no department.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers.scim.target import ENTERPRISE_USER, ORGSTREAM_GROUP, ScimTarget
from workers.simulator.directory import SimulatedDirectory

UserRow = tuple[str, bool, str, str, tuple[int, ...]]


@dataclass(frozen=True)
class DirectoryView:
    departments: dict[int, tuple[str, int]]
    users: dict[str, UserRow]

    def differences(self, other: DirectoryView) -> list[str]:
        lines = []
        for label, mine, theirs in (
            ("department", self.departments, other.departments),
            ("user", self.users, other.users),
        ):
            for key in sorted(set(mine) | set(theirs), key=str):
                if label == "user" and _leaver_matches(mine.get(key), theirs.get(key)):  # type: ignore[call-overload]
                    continue
                if mine.get(key) != theirs.get(key):  # type: ignore[call-overload]
                    lines.append(f"{label} {key}: {mine.get(key)} != {theirs.get(key)}")  # type: ignore[call-overload]
        return lines


def _leaver_matches(source: object, target: object) -> bool:
    """A leaver (inactive, in no department) is right when the target has them deactivated and
    in no department, or never had them (joined and left before the worker saw them). Their
    other attributes are not compared: a change made just before leaving cannot be read back
    from the vendor once the user is gone."""
    if not (isinstance(source, tuple) and not source[1] and not source[4]):
        return False
    return target is None or (isinstance(target, tuple) and not target[1] and not target[4])


def source_view(sim: SimulatedDirectory) -> DirectoryView:
    users: dict[str, UserRow] = {}
    for user in sim.departed.values():
        users[user.userid] = (user.name, False, user.position, user.email, ())
    for user in sim.users.values():
        active = user.status in (1, 4)
        row = (user.name, active, user.position, user.email, tuple(sorted(user.departments)))
        users[user.userid] = row
    departments = {d.id: (d.name, d.parent_id) for d in sim.departments.values()}
    return DirectoryView(departments, users)


async def scim_view(
    target: ScimTarget, vendor: str, corp_id: str, number: Callable[[str], int] = int
) -> DirectoryView:
    """Read every User and Group of this corp back from the target, whatever department mode.
    `number`: the simulator's number of a department id as the vendor names it."""
    dept_prefix, user_prefix = f"{vendor}:{corp_id}:dept:", f"{vendor}:{corp_id}:user:"
    groups = [
        g
        for g in await target.list_all("Groups")
        if str(g.get("externalId", "")).startswith(dept_prefix)
    ]
    dept_of = {g["id"]: number(g["externalId"][len(dept_prefix) :]) for g in groups}
    by_display = {g["displayName"]: dept_of[g["id"]] for g in groups}
    parent_of: dict[int, int] = {}
    members_of: dict[str, set[int]] = defaultdict(set)
    for group in groups:
        for member in group.get("members", []):
            if member.get("type") == "Group" and member["value"] in dept_of:
                parent_of[dept_of[member["value"]]] = dept_of[group["id"]]
            else:
                members_of[member["value"]].add(dept_of[group["id"]])
    departments = {}
    for group in groups:
        department_id = dept_of[group["id"]]
        name, parent = _placement(group, department_id, parent_of, by_display, dept_prefix, number)
        departments[department_id] = (name, parent)
    users = {}
    for user in await target.list_all("Users"):
        external = str(user.get("externalId", ""))
        if external.startswith(user_prefix):
            users[external[len(user_prefix) :]] = _user_row(user, members_of[user["id"]])
    return DirectoryView(departments, users)


def render_tree(view: DirectoryView) -> str:
    """The department tree with each department's users, as a person would read it."""
    children: dict[int, list[int]] = defaultdict(list)
    for department_id, (_, parent) in sorted(view.departments.items()):
        children[parent].append(department_id)
    members: dict[int, list[str]] = defaultdict(list)
    for userid, (name, active, *_rest, departments) in sorted(view.users.items()):
        for department_id in departments:
            members[department_id].append(f"{name} ({userid}){'' if active else ' [inactive]'}")
    lines: list[str] = []

    def walk(department_id: int, depth: int) -> None:
        name = view.departments[department_id][0]
        lines.append(f"{'  ' * depth}▸ {name}  [dept {department_id}]")
        lines.extend(f"{'  ' * (depth + 1)}· {m}" for m in members[department_id])
        for child in children[department_id]:
            walk(child, depth + 1)

    for root in children[0]:
        walk(root, 0)
    inactive = [f"{r[0]} ({u})" for u, r in sorted(view.users.items()) if not r[1] and not r[4]]
    if inactive:
        lines.append("deactivated, in no department: " + ", ".join(inactive))
    return "\n".join(lines)


def _placement(
    group: dict[str, Any],
    department_id: int,
    parent_of: dict[int, int],
    by_display: dict[str, int],
    dept_prefix: str,
    number: Callable[[str], int],
) -> tuple[str, int]:
    display = str(group["displayName"])
    extension = group.get(ORGSTREAM_GROUP)
    if extension:  # extension mode
        parent_external = str(extension.get("parentExternalId", ""))
        parent = number(parent_external[len(dept_prefix) :]) if parent_external else 0
        return display, parent
    if department_id in parent_of:  # nested mode
        return display, parent_of[department_id]
    head, _, name = display.rpartition("/")  # flat mode: the path is the name
    return name, by_display.get(head, 0)


def _user_row(user: dict[str, Any], departments: set[int]) -> UserRow:
    emails = user.get("emails") or [{}]
    assert user["externalId"].rpartition(":")[2] in str(user.get("userName"))
    assert user.get("name", {}).get("formatted") == user.get("displayName")
    assert isinstance(user.get(ENTERPRISE_USER, {}), dict)
    return (
        str(user.get("displayName", "")),
        bool(user.get("active")),
        str(user.get("title", "")),
        str(emails[0].get("value", "")),
        tuple(sorted(departments)),
    )
