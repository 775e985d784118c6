"""Pure mapping from source entities to SCIM resources, and minimal PATCH diffs between them.

The defaults of the SCIM mapping in docs/design.md: externalIds
`<vendor>:<corp_id>:user:<userid>` and `<vendor>:<corp_id>:dept:<id>`, userName = userid (or
the `scim.user_name` template), the enterprise extension's `department` is the main
department's name and `manager` the target id of the first direct leader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from schemas.mapping.attributes import AttributeMapping
from workers.scim.target import CORE_GROUP, CORE_USER, ENTERPRISE_USER, ORGSTREAM_GROUP, Resource
from workers.vendors.source import SourceDepartment, SourceUser

Operation = dict[str, Any]

# User attributes orgstream owns on the target, as PATCH paths. Others are left alone.
_USER_PATHS: Final = (
    "externalId",
    "userName",
    "displayName",
    "name.formatted",
    "active",
    "title",
    "emails",
    "phoneNumbers",
    f"{ENTERPRISE_USER}:department",
    f"{ENTERPRISE_USER}:manager",
)
_GROUP_EXTENSION_PATHS: Final = ("parentExternalId", "parentId", "path", "order")


@dataclass(frozen=True, slots=True)
class Namespace:
    """Where one tenant's ids live on the shared target, so tenants can never collide."""

    vendor: str
    corp_id: str
    tenant: str = ""
    user_name_template: str = "{userid}"
    # User attributes orgstream neither sets nor removes: their source fields are kept off the
    # directory feed (`[feed] exclude_fields`), so the target's own value stands.
    unmanaged: frozenset[str] = frozenset()
    # The target's own mapping on top of the defaults (docs/mapping.md).
    mapping: AttributeMapping = field(default_factory=AttributeMapping)
    # Derived once from the two above, since every user write asks: the User attributes
    # orgstream sets on this target, as PATCH paths, and whether the mapping sets userName.
    user_paths: tuple[str, ...] = field(init=False, compare=False)
    maps_user_name: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        paths = [p for p in _USER_PATHS if p not in self.unmanaged]
        set_derived = object.__setattr__  # frozen: set once, here
        set_derived(self, "user_paths", tuple(dict.fromkeys([*paths, *self.mapping.patch_paths])))
        set_derived(
            self, "maps_user_name", any(a.attribute == "userName" for a in self.mapping.attributes)
        )

    def user(self, userid: str) -> str:
        return f"{self.vendor}:{self.corp_id}:user:{userid}"

    def user_name(self, userid: str) -> str:
        """The userName (`scim.user_name` template): the userid unless configured otherwise."""
        return self.user_name_template.format(
            userid=userid, tenant=self.tenant, vendor=self.vendor, corp_id=self.corp_id
        )

    def department(self, department_id: str) -> str:
        return f"{self.vendor}:{self.corp_id}:dept:{department_id}"

    @property
    def department_prefix(self) -> str:
        return f"{self.vendor}:{self.corp_id}:dept:"

    @property
    def user_prefix(self) -> str:
        return f"{self.vendor}:{self.corp_id}:user:"


@dataclass(frozen=True, slots=True)
class GroupRef:
    """A department's Group on the target, with what children need to place themselves."""

    id: str
    name: str
    display_name: str
    path: str  # "/1/12/15": ids from the root, used by the extension mode and flat renames


def user_resource(
    user: SourceUser, ns: Namespace, department: str | None, manager_id: str | None
) -> Resource:
    resource: Resource = {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "externalId": ns.user(user.userid),
        "userName": ns.user_name(user.userid),
        "displayName": user.name,
        "name": {"formatted": user.name},
        "active": user.active,
    }
    if user.position:
        resource["title"] = user.position
    if user.email:
        resource["emails"] = [{"value": user.email, "type": "work", "primary": True}]
    phones = [{"value": user.mobile, "type": "mobile"}] if user.mobile else []
    phones += [{"value": user.telephone, "type": "work"}] if user.telephone else []
    if phones:
        resource["phoneNumbers"] = phones
    for attribute in ns.unmanaged:
        resource.pop(attribute, None)
    enterprise: dict[str, Any] = {}
    if department:
        enterprise["department"] = department
    if manager_id:
        enterprise["manager"] = {"value": manager_id}
    if enterprise:
        resource[ENTERPRISE_USER] = enterprise
    if ns.mapping.attributes:
        ns.mapping.apply(resource, mapping_record(user))
    return resource


def mapping_record(user: SourceUser) -> dict[str, str]:
    """The fields a mapping expression or a scope condition reads (docs/mapping.md)."""
    record = {
        "userid": user.userid,
        "name": user.name,
        "main_department": user.main_department or "",
        "title": user.position,
        "email": user.email,
        "biz_mail": user.biz_mail,
        "mobile": user.mobile,
        "telephone": user.telephone,
        "alias": user.alias,
        "active": "true" if user.active else "false",
    }
    record.update({f"custom.{name}": value for name, value in user.custom.items()})
    return record


def group_resource(
    department: SourceDepartment,
    ns: Namespace,
    display_name: str,
    parent: GroupRef | None,
    path: str,
    with_extension: bool,
) -> Resource:
    resource: Resource = {
        "schemas": [CORE_GROUP],
        "externalId": ns.department(department.id),
        "displayName": display_name,
    }
    if with_extension:
        extension: dict[str, Any] = {"path": path, "order": department.order}
        if parent is not None:
            extension["parentExternalId"] = ns.department(department.parent_id)
            extension["parentId"] = parent.id
        resource["schemas"] = [CORE_GROUP, ORGSTREAM_GROUP]
        resource[ORGSTREAM_GROUP] = extension
    return resource


def user_patch(current: Resource, desired: Resource, ns: Namespace) -> list[Operation]:
    """Replace what differs, remove what the source no longer has; nothing when equal.
    Only the attributes orgstream sets on this target (`ns.user_paths`) are compared."""
    return _diff(current, desired, ns.user_paths)


def resource_patch(
    kind: str, current: Resource, desired: Resource, ns: Namespace
) -> list[Operation]:
    """`user_patch` for Users, `group_patch` for Groups."""
    if kind == "Users":
        return user_patch(current, desired, ns)
    return group_patch(current, desired)


def group_patch(current: Resource, desired: Resource) -> list[Operation]:
    paths = ["displayName"]
    if ORGSTREAM_GROUP in desired:
        paths += [f"{ORGSTREAM_GROUP}:{name}" for name in _GROUP_EXTENSION_PATHS]
    return _diff(current, desired, paths)


def _diff(
    current: Resource, desired: Resource, paths: tuple[str, ...] | list[str]
) -> list[Operation]:
    operations: list[Operation] = []
    for path in paths:
        have, want = _get(current, path), _get(desired, path)
        if have == want:
            continue
        if want is None:
            operations.append({"op": "remove", "path": path})
        else:
            operations.append({"op": "replace", "path": path, "value": want})
    return operations


def _get(resource: Resource, path: str) -> Any:
    """Value at a PATCH path: `a`, `a.b`, or `<schema urn>:attr`."""
    if path.startswith("urn:"):
        urn, _, attribute = path.rpartition(":")
        extension = resource.get(urn)
        return extension.get(attribute) if isinstance(extension, dict) else None
    value: Any = resource
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def owned_part(resource: Resource) -> Resource:
    """A resource read from the target without what the target alone decides (its id, meta,
    members, groups): what the ledger keeps as "last written" when it adopts a resource."""
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "members", "groups")}


def with_operations(resource: Resource, operations: list[Operation]) -> Resource:
    """`resource` as it is once the target has applied these `replace`/`remove` operations
    (the diffs of this module): what the ledger keeps after a PATCH, without reading back."""
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in resource.items()}
    for operation in operations:
        path = str(operation.get("path", ""))
        if path.startswith("urn:"):
            urn, _, attribute = path.rpartition(":")
            parent, key = result.setdefault(urn, {}), attribute
        elif "." in path:
            head, _, key = path.partition(".")
            parent = result.setdefault(head, {})
        else:
            parent, key = result, path
        if operation["op"] == "remove":
            parent.pop(key, None)
        else:
            parent[key] = operation["value"]
    return result
