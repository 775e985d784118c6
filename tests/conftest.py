"""The order tests run in: with two pytest processes (`make test` runs `pytest -n 2`), the
longest integration tests go first, one to each process, and the many short tests fill in
around them, so neither process is left with a long test at the end."""

from __future__ import annotations

import pytest

# The slowest modules, slowest first (pytest prints the slowest tests of every run).
_FIRST = (
    "test_full_sync_feed.py",
    "test_full_sync.py",
    "test_convergence.py",
    "test_provisioning_pull.py",
    "test_dlq.py",
    "test_directory_feed.py",
    "test_resilience.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def cost(item: pytest.Item) -> tuple[int, int]:
        module = item.path.name
        if "5000" in item.name:  # the two longest of all: one to each process
            return (0, 0)
        if module in _FIRST:
            return (1, _FIRST.index(module))
        return (2, 0) if item.get_closest_marker("integration") else (3, 0)

    items.sort(key=cost)  # stable: within a group, the order pytest collected them in
