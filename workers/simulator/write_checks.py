"""What both simulated vendors check of a written user, and how a refused write is raised: the
same rules for a userid, a mobile and an email, the errcode and message to answer with."""

from __future__ import annotations

import re
from typing import Final

USERID: Final = re.compile(r"[A-Za-z0-9_@.\-]{1,64}")
MOBILE: Final = re.compile(r"\+?[0-9][0-9-]{4,19}")
EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


class Errcode(Exception):
    """A write the vendor refuses, with its errcode and message."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg
