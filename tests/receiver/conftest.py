"""Prints the receiver fuzz test's totals (inputs, statuses) at the end of a run."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    fuzz = sys.modules.get("tests.receiver.test_fuzz")
    totals = getattr(fuzz, "TOTALS", None)
    if not totals:
        return
    terminalreporter.section("receiver fuzz totals")
    for name, count in sorted(totals.items()):
        terminalreporter.write_line(f"{name}: {count}")
