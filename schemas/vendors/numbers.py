"""Numbers taken from outside: ASCII digits only, within a range.

`str.isdigit()` accepts `²` and Arabic-Indic digits, which `int()` then rejects or silently
converts, and `int()` takes any length; an id must also fit the 64-bit integers the event's
encoder and the stores can hold.
"""

from __future__ import annotations

import re
from typing import Final

MAX_ID: Final = 2**63 - 1  # department ids, orders: what a signed 64-bit integer holds
# Epoch seconds or milliseconds: 14 digits reach the year 5138 in milliseconds.
MAX_TIMESTAMP_DIGITS: Final = 14
_DIGITS: Final = re.compile(r"[0-9]{1,19}")


def ascii_int(text: str, low: int = 0, high: int = MAX_ID) -> int:
    """`text` as an integer in [low, high]; ValueError for anything else."""
    if not _DIGITS.fullmatch(text):
        raise ValueError("not a number of ASCII digits")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is outside [{low}, {high}]")
    return value


def is_timestamp(text: str) -> bool:
    """ASCII digits, few enough to be epoch seconds or milliseconds."""
    return len(text) <= MAX_TIMESTAMP_DIGITS and bool(_DIGITS.fullmatch(text))
