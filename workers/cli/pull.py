"""`orgstream sync --tenant T --to-vendor [--dry-run]`: the pull mode of provisioning, run once
from the command line (docs/provisioning.md)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import httpx
import orjson
import structlog

from schemas.config import Settings
from workers.directory.reader import DirectoryReader
from workers.provision.pull import Puller, PullReport
from workers.provision.setup import open_provisioners
from workers.store.directory_index import open_directory_index


async def pull_tenant(settings: Settings, tenant_id: str, dry_run: bool) -> PullReport:
    tenant = settings.tenant(tenant_id)
    assert tenant is not None  # the command checked it
    rules = tenant.provisioning
    if rules is None or rules.source_url is None:
        raise ValueError(
            f"tenant {tenant_id!r} has no provisioning_source to pull from "
            "(and provisioning = true)"
        )
    headers = {"Accept": "application/scim+json"}
    if rules.source_token is not None:
        headers["Authorization"] = f"Bearer {rules.source_token.reveal()}"
    async with contextlib.AsyncExitStack() as opened:
        index = open_directory_index(settings.store.url)
        opened.push_async_callback(index.aclose)
        directory = settings.directory
        reader = DirectoryReader(index, directory.leaver_days, directory.max_results)
        provisioners = await opened.enter_async_context(open_provisioners(settings, reader, index))
        source = await opened.enter_async_context(
            httpx.AsyncClient(base_url=f"{rules.source_url}/", headers=headers, timeout=30)
        )
        puller = Puller(
            tenant.id, provisioners[tenant.id], index, provisioners[tenant.id].mirror,
            rules.userid, rules.department_prefix, tenant.vendor == "dingtalk",
        )  # fmt: skip
        return await puller.run(source, dry_run)


log = structlog.get_logger("orgstream.provisioning")


Pull = Callable[[Settings, str, bool], Awaitable[PullReport]]


async def pull_on_schedule(
    settings: Settings,
    pull: Pull = pull_tenant,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    now: Callable[[], float] = time.monotonic,
) -> None:
    """Every tenant with a provisioning_source, pulled every `provisioning_source_minutes`
    (by `orgstream directory`), until cancelled. A failed pull is logged and tried again at
    the next interval. `pull`, `sleep` and `now` are there for tests."""
    due = {
        t.id: t.provisioning.source_minutes * 60
        for t in settings.tenants
        if t.provisioning and t.provisioning.source_url and t.provisioning.source_minutes > 0
    }
    if not due:
        return
    # The first pull one interval after start: restarting the process does not pull.
    next_at = {tenant: now() + every for tenant, every in due.items()}
    while True:
        for tenant, every in due.items():
            if now() < next_at[tenant]:
                continue
            next_at[tenant] = now() + every
            try:
                report = await pull(settings, tenant, False)
            except Exception as exc:  # noqa: BLE001 - logged; the next interval tries again
                log.error("provisioning_pull_failed", tenant=tenant, error=str(exc) or repr(exc))
                continue
            log.info("provisioning_pulled", tenant=tenant, changes=dict(report.counts),
                     refused=len(report.refused))  # fmt: skip
        await sleep(min(60.0, *due.values()))


def report_lines(report: PullReport, tenant: str) -> str:
    verb = "would make" if report.dry_run else "made"
    lines = [f"{tenant}: {verb} the vendor equal to its provisioning source"]
    lines += [f"  {change}" for change in report.changes]
    counted = ", ".join(f"{n} {what}" for what, n in sorted(report.counts.items())) or "nothing"
    lines.append(f"  {counted}; {len(report.refused)} refused")
    lines += [f"  refused: {why}" for why in report.refused]
    return "\n".join(lines)


def report_json(report: PullReport, tenant: str) -> str:
    return orjson.dumps(
        {
            "tenant": tenant,
            "dry_run": report.dry_run,
            "changes": report.changes,
            "counts": dict(report.counts),
            "refused": report.refused,
        }
    ).decode()
