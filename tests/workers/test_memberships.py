"""Membership changes of concurrent records coalesced per Group (workers/scim/memberships.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from workers.errors import ScimRejected, ScimUnavailable
from workers.scim.memberships import MembershipBatcher


class SlowTarget:
    """Records each PATCH; takes a moment, like a real one; refuses members named "bad"."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.patches: list[tuple[str, list[str]]] = []
        self.fail_with = fail_with

    async def patch(self, kind: str, group_id: str, ops: Sequence[Mapping[str, Any]]) -> None:
        await asyncio.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with
        members = [str(op["value"][0]["value"]) for op in ops]
        if "bad" in members:
            raise ScimRejected(400, "invalidValue", "no such user")
        self.patches.append((group_id, members))


def add(member: str) -> dict[str, Any]:
    return {"op": "add", "path": "members", "value": [{"value": member, "type": "User"}]}


async def test_concurrent_changes_share_a_patch_and_an_idle_one_goes_at_once() -> None:
    target = SlowTarget()
    batcher = MembershipBatcher(target.patch, per_patch=100)
    await batcher.change("g", add("alone"))
    assert target.patches == [("g", ["alone"])]
    await asyncio.gather(*(batcher.change("g", add(f"u{i}")) for i in range(30)))
    assert [len(members) for _, members in target.patches[1:]] == [30]  # arrived together
    # Changes that arrive while a PATCH is in flight go together in the next one.
    in_flight = asyncio.ensure_future(batcher.change("g", add("first")))
    await asyncio.sleep(0.001)
    await asyncio.gather(in_flight, *(batcher.change("g", add(f"v{i}")) for i in range(5)))
    assert [len(members) for _, members in target.patches[2:]] == [1, 5]


async def test_a_patch_never_carries_more_than_the_limit() -> None:
    target = SlowTarget()
    batcher = MembershipBatcher(target.patch, per_patch=10)
    await asyncio.gather(*(batcher.change("g", add(f"u{i}")) for i in range(35)))
    assert max(len(members) for _, members in target.patches) == 10
    assert sorted(m for _, ms in target.patches for m in ms) == sorted(f"u{i}" for i in range(35))


async def test_groups_are_patched_apart() -> None:
    target = SlowTarget()
    batcher = MembershipBatcher(target.patch, per_patch=100)
    await asyncio.gather(batcher.change("a", add("x")), batcher.change("b", add("y")))
    assert sorted(target.patches) == [("a", ["x"]), ("b", ["y"])]


async def test_a_refused_operation_fails_only_its_own_caller() -> None:
    target = SlowTarget()
    batcher = MembershipBatcher(target.patch, per_patch=100)
    await batcher.change("g", add("first"))  # so the next three queue together
    first = asyncio.ensure_future(batcher.change("g", add("warm")))
    results = await asyncio.gather(
        batcher.change("g", add("ok1")),
        batcher.change("g", add("bad")),
        batcher.change("g", add("ok2")),
        return_exceptions=True,
    )
    await first
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], ScimRejected)
    assert {m for _, ms in target.patches for m in ms} == {"first", "warm", "ok1", "ok2"}


async def test_an_unavailable_target_fails_every_waiter_and_the_next_change_is_sent() -> None:
    target = SlowTarget(fail_with=ScimUnavailable("503"))
    batcher = MembershipBatcher(target.patch, per_patch=100)
    with pytest.raises(ScimUnavailable):
        await batcher.change("g", add("x"))
    target.fail_with = None
    await batcher.change("g", add("y"))
    assert target.patches == [("g", ["y"])]
