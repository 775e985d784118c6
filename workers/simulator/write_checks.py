"""What both simulated vendors check of a written user, and how a refused write is raised: the
same rules for a userid, a mobile and an email, the errcode and message to answer with."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from workers.simulator.directory import ROOT_ID, SimulatedDirectory

USERID: Final = re.compile(r"[A-Za-z0-9_@.\-]{1,64}")
MOBILE: Final = re.compile(r"\+?[0-9][0-9-]{4,19}")
EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


class Errcode(Exception):
    """A write the vendor refuses, with its errcode and message."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


def refuse_deletion(
    directory: SimulatedDirectory, department_id: int, says: Mapping[int, str]
) -> None:
    """What both vendors refuse to delete: the root (60007), an unknown department (60003), one
    with sub-departments (60006) or with members (60005); `says`: each errcode's message."""
    if department_id == ROOT_ID:
        raise Errcode(60007, says[60007])
    if department_id not in directory.departments:
        raise Errcode(60003, says[60003])
    if any(d.parent_id == department_id for d in directory.departments.values()):
        raise Errcode(60006, says[60006])
    if any(department_id in u.departments for u in directory.users.values()):
        raise Errcode(60005, says[60005])


def refuse_taken_name(
    directory: SimulatedDirectory, name: str, parent: int, itself: int | None, says: str
) -> None:
    """60008: another department under the same parent has the name."""
    for other in directory.departments.values():
        if other.parent_id == parent and other.name == name and other.id != itself:
            raise Errcode(60008, says)
