"""Text from outside made safe for a terminal: vendor ids, names and errors are shown, never
obeyed. Control characters (C0, DEL, C1) and the bidirectional overrides that reorder what a
person sees are written as escapes, so `\\x1b[2J` in a userid cannot clear an operator's screen.
"""

from __future__ import annotations

import re
from typing import Final

# C0, DEL, C1; the line and paragraph separators; the marks and overrides of bidirectional text.
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    return _UNSAFE.sub(_escape, text)
