"""The directory record (`orgstream.directory-record`, version 2) and its wire codec.

A record is the complete current state of one user or department, read from the vendor (or
taken from a hint that carried all of it), or the confirmed deletion of one. Records are keyed
`tenant:kind:id` like the hints, so one entity's records keep their order, and the topic that
holds them is compacted: it keeps the latest record of every entity. `version` is when the
vendor was read, in milliseconds: a sink ignores a record older than the one it applied.

`directory-record.v2.schema.json` beside this module is the contract; the tests check that
the model and that file agree. Version 2 made department ids strings (Feishu's are not
numbers); version 1 records, whose department ids are numbers and whose root's parent is 0,
still decode, into the same model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import orjson

from schemas.topics import partition_key
from schemas.types import ENTITIES, VENDORS, Entity, Vendor

RECORD_SCHEMA_NAME: Final = "orgstream.directory-record"
RECORD_SCHEMA_VERSION: Final = 2
READABLE_VERSIONS: Final = (1, 2)

# `provisioning`: read back from the vendor right after orgstream wrote it for an IdP.
Origin = Literal["callback", "full_sync", "recovery", "replay", "provisioning"]
ORIGINS: Final[tuple[Origin, ...]] = ("callback", "full_sync", "recovery", "replay", "provisioning")
# What a mapping may read of a user besides its departments, and what `[feed] exclude_fields`
# may keep out of the feed.
USER_TEXT_FIELDS: Final = ("title", "email", "biz_mail", "mobile", "telephone", "alias")


# A department's parent when it has none. Department ids are strings: WeCom's and DingTalk's
# are numbers, Feishu's are not (its root, "0", is a department like any other).
NO_PARENT: Final = ""


class RecordError(ValueError):
    """A value that is not a valid directory record of a known version."""


@dataclass(frozen=True, slots=True)
class Membership:
    """One department a user belongs to, with the user's order in it."""

    department: str
    order: int = 0
    leader: bool = False


@dataclass(frozen=True, slots=True)
class UserState:
    userid: str
    name: str
    active: bool
    departments: tuple[Membership, ...] = ()
    main_department: str | None = None
    direct_leaders: tuple[str, ...] = ()
    texts: Mapping[str, str] = field(default_factory=dict)  # USER_TEXT_FIELDS, when known
    custom: Mapping[str, str] = field(default_factory=dict)  # extattr / extension / custom_attrs
    extra: Mapping[str, Any] = field(default_factory=dict)  # the rest the vendor returned


@dataclass(frozen=True, slots=True)
class DepartmentState:
    id: str
    name: str
    parent_id: str  # NO_PARENT for the root

    order: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A hint a record answers: its event id, the change it reported, when it arrived."""

    event_id: str
    change: str
    received_at: str


@dataclass(frozen=True, slots=True)
class DirectoryRecord:
    tenant: str
    vendor: Vendor
    kind: Entity
    id: str
    version: int  # milliseconds since the epoch when the vendor was read
    origin: Origin
    resolved_at: str
    user: UserState | None = None
    department: DepartmentState | None = None
    deleted: bool = False
    renamed_to: str | None = None  # a deleted userid whose person lives on under this one
    resolved: tuple[Resolved, ...] = ()
    schema_version: int = RECORD_SCHEMA_VERSION

    @property
    def key(self) -> bytes:
        return partition_key(self.tenant, self.kind, self.id)

    def supersedes(self, other_version: int | None) -> bool:
        """Whether a sink that applied `other_version` of this entity should apply this one."""
        return other_version is None or self.version >= other_version


def encode_record(record: DirectoryRecord) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)


def decode_record(payload: bytes) -> DirectoryRecord:
    """Parse and check one record value; anything off raises `RecordError`."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordError("a record is a JSON object")
    if data.get("schema_version") not in READABLE_VERSIONS:
        raise RecordError(f"unsupported schema_version {data.get('schema_version')!r}")
    try:
        return _record(data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"not a directory record: {exc}") from exc


def _record(data: dict[str, Any]) -> DirectoryRecord:
    for name, choices in (("vendor", VENDORS), ("kind", ENTITIES), ("origin", ORIGINS)):
        if data.get(name) not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}")
    for name in ("tenant", "id", "resolved_at"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f"{name} must be a non-empty string")
    if not isinstance(data.get("version"), int) or isinstance(data["version"], bool):
        raise ValueError("version must be an integer")
    deleted = data.get("deleted") is True
    user, department = data.get("user"), data.get("department")
    if user is None:
        holds = "deleted" if department is None else "department"
    else:
        holds = "user" if department is None else "both"
    if holds != ("deleted" if deleted else data["kind"]):
        raise ValueError(f"a {data['kind']} record that is deleted={deleted} holds {holds}")
    renamed_to = data.get("renamed_to")
    state_id = user.get("userid") if isinstance(user, dict) else None
    if isinstance(department, dict):
        state_id = str(department.get("id"))
    if state_id is not None and state_id != data["id"]:
        raise ValueError(f"the state is of {state_id!r}, the record of {data['id']!r}")
    return DirectoryRecord(
        tenant=data["tenant"],
        vendor=cast(Vendor, data["vendor"]),
        kind=cast(Entity, data["kind"]),
        id=data["id"],
        version=data["version"],
        origin=cast(Origin, data["origin"]),
        resolved_at=data["resolved_at"],
        user=None if user is None else _user(user),
        department=None if department is None else _department(department),
        deleted=deleted,
        renamed_to=renamed_to if isinstance(renamed_to, str) and renamed_to else None,
        resolved=tuple(
            Resolved(str(r["event_id"]), str(r["change"]), str(r["received_at"]))
            for r in data.get("resolved", ())
        ),
    )


def _user(data: Any) -> UserState:
    if not isinstance(data, dict) or not isinstance(data.get("active"), bool):
        raise ValueError("user must be an object with a boolean active")
    main = data.get("main_department")
    return UserState(
        userid=str(data["userid"]),
        name=str(data["name"]),
        active=data["active"],
        departments=tuple(
            Membership(
                department_id(m["department"]), int(m.get("order", 0)), bool(m.get("leader"))
            )
            for m in data.get("departments", ())
        ),
        main_department=None if main is None or main == "" else department_id(main),
        direct_leaders=tuple(str(x) for x in data.get("direct_leaders", ())),
        texts={str(k): str(v) for k, v in dict(data.get("texts", {})).items()},
        custom={str(k): str(v) for k, v in dict(data.get("custom", {})).items()},
        extra=dict(data.get("extra", {})),
    )


def _department(data: Any) -> DepartmentState:
    if not isinstance(data, dict):
        raise ValueError("department must be an object")
    return DepartmentState(
        id=department_id(data["id"]),
        name=str(data["name"]),
        parent_id=parent_id(data["parent_id"]),
        order=int(data.get("order", 0)),
        extra=dict(data.get("extra", {})),
    )


def department_id(value: Any) -> str:
    """A department id as records carry it; records written before ids were strings hold
    numbers."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"department id must be a string, not {value!r}")
    return str(value)


def parent_id(value: Any) -> str:
    """A parent id; the number 0 of records written before ids were strings is no parent."""
    return NO_PARENT if value == 0 and isinstance(value, int) else department_id(value)
