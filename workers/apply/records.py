"""What the SCIM apply path makes of a directory record, when it reads the feed instead of the
hints: the applier's input, complete, so that it never calls the vendor; and the mirror as its
source for the departments (and the moved user) a record refers to.

A user or department record is applied as the state it carries (as a full-field create is);
a deletion deprovisions; a deletion that names the userid the person has now is a rename.
"""

from __future__ import annotations

from schemas.event import AttributeValue, ContactEvent, SchemaError
from schemas.record import DepartmentState, DirectoryRecord, RecordError, UserState, decode_record
from schemas.types import Change
from workers.errors import DependencyMissing
from workers.store.mirror import Mirror
from workers.vendors.source import SourceDepartment, SourceUser

_ACTIVE, _DISABLED = 1, 2  # the status codes `user_from_attributes` reads


def event_of_record(payload: bytes) -> ContactEvent:
    """The applier's input for one encoded record; an unreadable one raises `SchemaError`."""
    try:
        record = decode_record(payload)
    except RecordError as exc:
        raise SchemaError(str(exc)) from exc
    return event_of(record)


def event_of(record: DirectoryRecord) -> ContactEvent:
    first = record.resolved[0] if record.resolved else None
    id_name = "userid" if record.kind == "user" else "id"
    attributes: dict[str, AttributeValue] = {id_name: record.id}
    change: Change
    if record.deleted and record.renamed_to:
        change, attributes["new_userid"] = "renamed", record.renamed_to
    elif record.deleted:
        change = "deleted"
    else:
        change = "created"  # a complete state, applied as is
        attributes.update(_user(record.user) if record.user else _department(record.department))
    received = first.received_at if first else record.resolved_at
    return ContactEvent(
        event_id=first.event_id
        if first
        else f"{record.origin}:{record.kind}:{record.id}:{record.version}",
        tenant=record.tenant,
        vendor=record.vendor,
        entity=record.kind,
        entity_id=record.id,
        change=change,
        occurred_at=received,
        received_at=received,
        raw="",
        attributes=attributes,
    )


def _user(user: UserState) -> dict[str, AttributeValue]:
    return {
        "name": user.name,
        "departments": [m.department for m in user.departments],
        "main_department": user.main_department,
        "status": _ACTIVE if user.active else _DISABLED,
        "position": user.texts.get("title", ""),
        "email": user.texts.get("email", ""),
        "biz_mail": user.texts.get("biz_mail", ""),
        "mobile": user.texts.get("mobile", ""),
        "telephone": user.texts.get("telephone", ""),
        "direct_leaders": list(user.direct_leaders),
        "alias": user.texts.get("alias", ""),
        "custom": dict(user.custom),
    }


def _department(department: DepartmentState | None) -> dict[str, AttributeValue]:
    assert department is not None  # a record holds one state unless deleted
    return {"name": department.name, "parent_id": department.parent_id, "order": department.order}


class MirrorSource:
    """A tenant's directory as the mirror holds it. What the mirror does not hold yet is not
    "deleted" (only a record says that): the applier waits for it (`DependencyMissing`)."""

    def __init__(self, mirror: Mirror, tenant: str) -> None:
        self._mirror = mirror
        self._tenant = tenant

    async def get_user(self, userid: str) -> SourceUser | None:
        user = (await self._kept("user", userid)).user
        return None if user is None else source_user(user)  # None: deleted

    async def get_department(self, department_id: str) -> SourceDepartment | None:
        department = (await self._kept("department", str(department_id))).department
        if department is None:
            return None  # deleted
        return source_department(department)

    async def aclose(self) -> None:
        return None

    async def _kept(self, kind: str, entity_id: str) -> DirectoryRecord:
        record = await self._mirror.record(self._tenant, kind, entity_id)
        if record is None:
            raise DependencyMissing(f"{kind} {entity_id} is not in the mirror yet")
        return record


def source_department(department: DepartmentState) -> SourceDepartment:
    return SourceDepartment(department.id, department.name, department.parent_id, department.order)


def source_user(user: UserState) -> SourceUser:
    """A user of a record, as the SCIM mapping takes it."""
    return SourceUser(
        userid=user.userid,
        name=user.name,
        departments=tuple(m.department for m in user.departments),
        main_department=user.main_department,
        position=user.texts.get("title", ""),
        email=user.texts.get("biz_mail") or user.texts.get("email", ""),
        mobile=user.texts.get("mobile", ""),
        telephone=user.texts.get("telephone", ""),
        active=user.active,
        direct_leaders=user.direct_leaders,
        biz_mail=user.texts.get("biz_mail", ""),
        alias=user.texts.get("alias", ""),
        custom=dict(user.custom),
    )
