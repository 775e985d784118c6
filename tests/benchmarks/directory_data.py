"""The directory of the directory-server bench: departments in a seeded random tree, users
in one or two departments each, as directory records and as plain SCIM resources."""

from __future__ import annotations

import random
from collections.abc import Iterator

from schemas.record import NO_PARENT, DepartmentState, DirectoryRecord, Membership, UserState

TENANT = "bench"


def departments(count: int, seed: int = 5) -> list[DepartmentState]:
    rng = random.Random(seed)
    found = [DepartmentState("1", "Bench Corp", NO_PARENT)]
    for department_id in range(2, count + 1):
        parent = rng.randint(1, department_id - 1) if department_id > 20 else 1
        name = f"Department {department_id}"
        found.append(DepartmentState(str(department_id), name, str(parent)))
    return found


def users(count: int, department_count: int, seed: int = 6) -> Iterator[UserState]:
    rng = random.Random(seed)
    for n in range(count):
        first = rng.randint(1, department_count)
        placed = (first,) if rng.random() < 0.8 else (first, rng.randint(1, department_count))
        yield UserState(
            userid=f"u{n:06d}",
            name=f"User {n}",
            active=rng.random() > 0.02,
            departments=tuple(Membership(str(d), i) for i, d in enumerate(dict.fromkeys(placed))),
            main_department=str(first),
            texts={"title": rng.choice(["Engineer", "Manager", "Sales"]),
                   "email": f"u{n:06d}@bench.example", "mobile": f"138{n:08d}"},
        )  # fmt: skip


def user_record(user: UserState) -> DirectoryRecord:
    return DirectoryRecord(TENANT, "wecom", "user", user.userid, 1, "full_sync",
                           "2026-11-30T00:00:00.000Z", user=user)  # fmt: skip


def department_record(department: DepartmentState) -> DirectoryRecord:
    return DirectoryRecord(TENANT, "wecom", "department", str(department.id), 1, "full_sync",
                           "2026-11-30T00:00:00.000Z", department=department)  # fmt: skip
