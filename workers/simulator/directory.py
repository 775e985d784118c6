"""The directory every simulated vendor keeps: departments, users, and the users who left.

Vendors differ only in how they announce a change (their callbacks) and how they serve the
directory (their APIs); this part is the truth both compare against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROOT_ID = 1  # WeCom and DingTalk both number the root department 1


@dataclass(frozen=True)
class SimDepartment:
    id: int
    name: str
    parent_id: int
    order: int = 0


@dataclass(frozen=True)
class SimUser:
    userid: str
    name: str
    departments: tuple[int, ...]
    main_department: int
    position: str = ""
    email: str = ""
    mobile: str = ""
    status: int = 1  # WeCom's: 1 active, 2 disabled (DingTalk has only active users)
    custom: tuple[tuple[str, str], ...] = ()  # custom fields: (name, text)
    alias: str = ""


@dataclass(kw_only=True)
class SimulatedDirectory:
    root_name: str = "总部"
    departments: dict[int, SimDepartment] = field(default_factory=dict)
    users: dict[str, SimUser] = field(default_factory=dict)
    departed: dict[str, SimUser] = field(default_factory=dict)  # deleted users, as last seen

    def __post_init__(self) -> None:
        self.departments.setdefault(ROOT_ID, SimDepartment(ROOT_ID, self.root_name, 0))
        self._next_department = 100

    def new_department_id(self) -> int:
        self._next_department += 1
        return self._next_department

    def subtree(self, department_id: int) -> set[int]:
        found = {department_id}
        changed = True
        while changed:
            children = {d.id for d in self.departments.values() if d.parent_id in found}
            changed = not children <= found
            found |= children
        return found

    def department_number(self, department_id: str) -> int:
        """The directory's number of a department as the vendor names it; 0: no parent."""
        return int(department_id) if department_id else 0

    def is_empty(self, department_id: int) -> bool:
        has_child = any(d.parent_id == department_id for d in self.departments.values())
        has_member = any(department_id in u.departments for u in self.users.values())
        return not has_child and not has_member
