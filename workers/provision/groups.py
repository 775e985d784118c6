"""A SCIM Group as an IdP writes it, mapped back to a department (docs/provisioning.md).

Which Groups are departments is the tenant's rule: every Group, or those whose displayName
starts with `provisioning_department_prefix`. Other Groups are refused with a 400 that says
so: orgstream does not write WeCom tags or DingTalk roles. The parent comes from the Group
extension's `parentId`, or from a path-style displayName ("Sales/East": East under Sales, the
path starting below the root); without either, the department goes under the root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.provision.errors import invalid
from workers.scim.target import ORGSTREAM_GROUP

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class GroupName:
    name: str  # the department's own name
    parents: tuple[str, ...]  # the names above it, below the root, when the name was a path
    parent_id: str | None  # the parent Group's SCIM id from the extension


def group_name(resource: Resource, prefix: str) -> GroupName:
    display = resource.get("displayName")
    if not isinstance(display, str) or not display.strip():
        raise invalid("displayName", "required")
    if prefix and not display.startswith(prefix):
        raise invalid(
            "displayName",
            f"only Groups named {prefix!r}… are departments of this tenant; orgstream does not "
            "write other Groups (WeCom tags, DingTalk roles)",
        )
    path = [part.strip() for part in display[len(prefix) :].split("/")]
    if not all(path):
        raise invalid("displayName", f"{display!r} has an empty part in its path")
    extension = resource.get(ORGSTREAM_GROUP)
    parent = extension.get("parentId") if isinstance(extension, dict) else None
    return GroupName(path[-1], tuple(path[:-1]), str(parent) if parent else None)


def member_ids(resource: Resource) -> list[str]:
    members = resource.get("members") or []
    if not isinstance(members, list):
        raise invalid("members", "a list of objects with a value")
    ids = []
    for member in members:
        value = member.get("value") if isinstance(member, dict) else None
        if not isinstance(value, str) or not value:
            raise invalid("members", "each member needs a value (a User's id)")
        ids.append(value)
    return list(dict.fromkeys(ids))
