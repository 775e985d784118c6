"""`orgstream directory` pulls each tenant that names a provisioning_source on its own
interval; a failed pull waits for the next one, and nothing pulls at start."""

from __future__ import annotations

import asyncio

import pytest

from schemas.config import Settings, parse_settings
from workers.cli.pull import pull_on_schedule
from workers.provision.pull import PullReport


def tenant(tenant_id: str, minutes: int) -> dict[str, object]:
    return {
        "id": tenant_id, "vendor": "wecom", "corp_id": f"ww{tenant_id}", "callback_token": "t",
        "encoding_aes_key": "a" * 43, "sync_secret": "s", "provisioning": True,
        "provisioning_token": f"{tenant_id}-write", "provisioning_source_minutes": minutes,
        "provisioning_source": f"https://idp.example/scim/{tenant_id}",
    }  # fmt: skip


async def test_each_tenant_is_pulled_on_its_interval_and_a_failure_waits_for_the_next() -> None:
    settings = parse_settings(
        {"tenants": [tenant("hourly", 60), tenant("often", 15), tenant("never", 0)]}, environ={}
    )
    clock = 0.0
    pulled: list[tuple[str, float]] = []

    async def pull(_: Settings, tenant_id: str, dry_run: bool) -> PullReport:
        assert not dry_run
        pulled.append((tenant_id, clock))
        if (tenant_id, clock) == ("often", 15 * 60):
            raise OSError("the source did not answer")
        return PullReport(dry_run)

    async def sleep(seconds: float) -> None:
        nonlocal clock
        clock += seconds
        if clock > 2 * 3600:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await pull_on_schedule(settings, pull, sleep, lambda: clock)

    assert [at for t, at in pulled if t == "hourly"] == [3600, 7200]
    # The failed pull at 15 minutes is not retried at once: the next is at 30.
    assert [at / 60 for t, at in pulled if t == "often"] == [15, 30, 45, 60, 75, 90, 105, 120]
    assert all(t != "never" for t, _ in pulled)  # 0 minutes: by command only
