"""A one-line progress bar on stderr for long commands (replay, sync), when it is a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

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


class ProgressFile:
    """The latest (step, done, total) as a small JSON file, for whoever watches the run from
    elsewhere (the console): rewritten whole, at most every half second and at each step's
    end, so a reader never sees half a file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._written = 0.0

    def __call__(self, step: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._written < 0.5:
            return
        self._written = now
        partial = self._path.with_suffix(".partial")
        try:
            partial.write_bytes(orjson.dumps({"step": step, "done": done, "total": total}))
            partial.replace(self._path)
        except OSError:
            pass  # the watcher's view is not worth the run: the sync goes on without it


def both(*reports: Callable[[str, int, int], None]) -> Callable[[str, int, int], None]:
    def report(step: str, done: int, total: int) -> None:
        for each in reports:
            each(step, done, total)

    return report
