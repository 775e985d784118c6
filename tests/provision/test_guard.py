"""An IdP's mass deactivation is held by the deletion guard until an operator approves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.provision.conftest import Provisioned, served, settings
from workers.dev.harness import new_simulator
from workers.simulator.wecom_api import WeComApi
from workers.store.approvals import approve_deletions


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[Provisioned, str]]:
    sim = new_simulator()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = settings(sim, guard={"max_deletions": 2})
    async for made in served(sim, WeComApi(sim), config, url):
        yield made, url


async def test_a_deactivation_over_the_limit_waits_for_approval(
    guarded: tuple[Provisioned, str],
) -> None:
    provisioned, url = guarded
    ids = [
        (await provisioned.create_user(f"u{n}", emails=[{"value": f"u{n}@x.cn"}]))["id"]
        for n in range(4)
    ]
    deactivate = {"op": "replace", "path": "active", "value": False}
    for scim_id in ids[:2]:
        assert (await provisioned.patch(f"Users/{scim_id}", deactivate)).status_code == 200

    held = await provisioned.patch(f"Users/{ids[2]}", deactivate)
    assert held.status_code == 503
    assert int(held.headers["Retry-After"]) >= 1
    assert "approve-deletions --tenant acme" in held.json()["detail"]
    assert provisioned.sim.users["u2"].status == 1  # nothing written
    deleting = await provisioned.send("DELETE", f"Users/{ids[3]}")
    assert deleting.status_code == 503
    assert "u3" in provisioned.sim.users
    assert ("held", "provisioning: PATCH") in await provisioned.outcomes()

    await approve_deletions(url, "acme")
    retried = await provisioned.patch(f"Users/{ids[2]}", deactivate)
    assert retried.status_code == 200
    assert provisioned.sim.users["u2"].status == 2
