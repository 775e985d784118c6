"""Writing into a vendor directory, whatever the vendor (docs/provisioning.md): the user and
department as the provisioning path wants them, and the calls a vendor's writer offers.

A writer raises `VendorRejected` with the vendor's errcode when the vendor refuses a call,
`VendorUnavailable` (or its `Throttled`) when it cannot answer now; the provisioning path turns
those into SCIM errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UserWrite:
    """Everything the vendor keeps of a provisioned user: an update sends all of it."""

    userid: str
    name: str
    departments: tuple[str, ...]
    main_department: str
    mobile: str = ""
    email: str = ""
    title: str = ""
    leaders: tuple[str, ...] = ()
    active: bool = True


@dataclass(frozen=True, slots=True)
class DepartmentWrite:
    name: str
    parent_id: str
    order: int = 0


class DirectoryWriter(Protocol):
    """One tenant's vendor directory, written. Every call is one vendor API call."""

    @property
    def can_disable(self) -> bool:
        """WeCom keeps disabled users; DingTalk has none: a deactivation there deletes."""
        ...

    @property
    def needs_mobile(self) -> bool:
        """DingTalk needs a mobile for every user; WeCom a mobile or an email."""
        ...

    async def create_user(self, user: UserWrite) -> None: ...

    async def update_user(self, user: UserWrite, before: UserWrite) -> None:
        """Only what differs from `before` is sent: both vendors leave a field that is not
        sent as it is, and orgstream may not know all of them (fields kept off the feed,
        WeCom's 2022 privacy rules)."""
        ...

    async def delete_user(self, userid: str) -> None: ...

    async def create_department(self, department: DepartmentWrite) -> str:
        """The new department's id."""
        ...

    async def update_department(self, department_id: str, department: DepartmentWrite) -> None: ...

    async def delete_department(self, department_id: str) -> None: ...

    async def aclose(self) -> None: ...
