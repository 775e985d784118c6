"""The source directory as the worker sees it, whatever the vendor: users and departments.

Principle 1 of docs/design.md: the vendor directory is the truth and a callback is a hint. An event
that carries a complete entity is used as is; otherwise the worker asks the vendor API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from schemas.event import AttributeValue
from schemas.record import NO_PARENT, parent_id
from workers.errors import VendorRejected

# WeCom status: 1 activated, 2 disabled, 4 not yet activated, 5 left
# (docs/vendors.md §1.5).
# An employee who has not activated WeCom yet is still an employee: active.
ACTIVE_STATUSES = frozenset({1, 4})


@dataclass(frozen=True, slots=True)
class SourceUser:
    userid: str
    name: str
    departments: tuple[str, ...]
    main_department: str | None = None
    position: str = ""
    email: str = ""
    mobile: str = ""
    telephone: str = ""
    active: bool = True
    direct_leaders: tuple[str, ...] = ()
    biz_mail: str = ""  # the business mail alone (`email` prefers it to the private one)
    alias: str = ""
    # The vendor's custom fields by name (WeCom extattr, DingTalk extension, Feishu custom_attrs)
    custom: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceDepartment:
    id: str
    name: str
    parent_id: str  # NO_PARENT ("") for the root
    order: int = 0


class SourceDirectory(Protocol):
    """Read access to one tenant's vendor directory; `None` means "not found": deleted."""

    async def get_user(self, userid: str) -> SourceUser | None: ...

    async def get_department(self, department_id: str) -> SourceDepartment | None: ...

    async def aclose(self) -> None: ...


def user_from_attributes(attributes: Mapping[str, AttributeValue]) -> SourceUser | None:
    """The user a full-field `create_user` carries; `None` when the event is id-only/partial."""
    name, departments, status = (attributes.get(k) for k in ("name", "departments", "status"))
    if (
        not isinstance(name, str)
        or not isinstance(departments, list)
        or not isinstance(status, int)
    ):
        return None
    leaders = attributes.get("direct_leaders")
    main = attributes.get("main_department")
    custom = attributes.get("custom")  # only a directory record carries it
    return SourceUser(
        userid=str(attributes["userid"]),
        name=name,
        departments=tuple(_department_of(d) for d in departments),
        main_department=str(main) if isinstance(main, int | str) and main != "" else None,
        position=_text(attributes.get("position")),
        email=_text(attributes.get("biz_mail")) or _text(attributes.get("email")),
        mobile=_text(attributes.get("mobile")),
        telephone=_text(attributes.get("telephone")),
        active=status in ACTIVE_STATUSES,
        direct_leaders=tuple(str(x) for x in leaders) if isinstance(leaders, list) else (),
        biz_mail=_text(attributes.get("biz_mail")),
        alias=_text(attributes.get("alias")),
        custom=dict(custom) if isinstance(custom, dict) else {},
    )


def department_from_attributes(attributes: Mapping[str, AttributeValue]) -> SourceDepartment | None:
    """The department a full `create_party` carries; `None` when name or parent is missing."""
    name, parent = attributes.get("name"), attributes.get("parent_id")
    if not isinstance(name, str) or not isinstance(parent, int | str) or isinstance(parent, bool):
        return None
    order = attributes.get("order")
    return SourceDepartment(
        id=str(attributes["id"]),
        name=name,
        parent_id=parent_id(parent),
        order=order if isinstance(order, int) else 0,
    )


def _department_of(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValueError(f"not a department id: {value!r}")
    return str(value)


def numeric_id(value: object) -> str:
    """A WeCom or DingTalk department id, a number the API may give as a string."""
    return str(int(str(value)))


def number_of(department_id: str) -> int:
    """A WeCom or DingTalk department id as the API takes it; an id that is no number cannot
    be theirs, and is refused rather than read as "not found" (which would delete)."""
    if not department_id.isascii() or not department_id.isdigit():
        raise VendorRejected(0, f"department id {department_id!r} is not a number")
    return int(department_id)


def numeric_parent(value: object) -> str:
    """A WeCom or DingTalk parent id: 0 (or none) is no parent."""
    number = int(str(value or 0))
    return NO_PARENT if number == 0 else str(number)


def _text(value: AttributeValue) -> str:
    return value if isinstance(value, str) else ""
