"""The mirror as a person reads it (a tree) or a program does (JSON): `orgstream mirror dump`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from schemas.record import NO_PARENT, UserState
from workers.store.mirror import MirroredDirectory


def as_json(tenant: str, directory: MirroredDirectory) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "departments": [
            {"id": d.id, "name": d.name, "parent_id": d.parent_id, "order": d.order}
            for d in sorted(directory.departments, key=lambda d: d.id)
        ],
        "users": [_user(u) for u in sorted(directory.users, key=lambda u: u.userid)],
        "deleted": {
            "users": sorted(directory.deleted_users),
            "departments": sorted(directory.deleted_departments),
        },
    }


def as_tree(directory: MirroredDirectory) -> str:
    """Departments under their parents, each with its users; then who is in no department."""
    children: dict[str, list[str]] = defaultdict(list)
    names = {d.id: d.name for d in directory.departments}
    for department in sorted(directory.departments, key=lambda d: (d.order, d.id)):
        parent = department.parent_id if department.parent_id in names else NO_PARENT
        children[parent].append(department.id)
    members: dict[str, list[str]] = defaultdict(list)
    for user in sorted(directory.users, key=lambda u: u.userid):
        label = f"{user.name} ({user.userid}){'' if user.active else ' [inactive]'}"
        for membership in user.departments:
            members[membership.department].append(label)
    lines: list[str] = []

    def walk(department_id: str, depth: int) -> None:
        lines.append(f"{'  ' * depth}▸ {names[department_id]}  [dept {department_id}]")
        lines.extend(f"{'  ' * (depth + 1)}· {m}" for m in members[department_id])
        for child in children[department_id]:
            walk(child, depth + 1)

    for root in children[NO_PARENT]:
        walk(root, 0)
    loose = [f"{u.name} ({u.userid})" for u in directory.users if not u.departments]
    if loose:
        lines.append("in no department: " + ", ".join(sorted(loose)))
    return "\n".join(lines)


def _user(user: UserState) -> dict[str, Any]:
    return {
        "userid": user.userid,
        "name": user.name,
        "active": user.active,
        "departments": sorted(m.department for m in user.departments),
        "main_department": user.main_department,
        "direct_leaders": list(user.direct_leaders),
        **{name: value for name, value in sorted(user.texts.items())},
    }
