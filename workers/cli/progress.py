"""A one-line progress bar on stderr for long commands (replay, sync), when it is a terminal."""

from __future__ import annotations

import sys

_WIDTH = 30


def terminal_progress(done: int, total: int, step: str = "") -> None:
    """`step  [########......] 2400/5000`, redrawn in place; a newline once done."""
    if not sys.stderr.isatty():
        return
    filled = _WIDTH * done // max(total, 1)
    label = f"{step:<16} " if step else ""
    sys.stderr.write(f"\r{label}[{'#' * filled}{'.' * (_WIDTH - filled)}] {done}/{total}  ")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def step_progress(step: str, done: int, total: int) -> None:
    """The same, in the (step, done, total) form the full sync reports in."""
    terminal_progress(done, total, step)
