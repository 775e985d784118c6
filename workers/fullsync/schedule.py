"""What the worker runs on its own, per tenant with API credentials: a full sync every
`sync.interval_minutes` (daily by default), and for DingTalk the recovery of failed callbacks
every `sync.failed_callbacks_minutes`.

Any number of worker processes may run this loop. A full sync is due when the tenant's latest
run (manual or scheduled) started an interval ago; the check is made again under the tenant's
lease, so the first worker to get there runs it and the others find it done. With no run on
record, the first comes one interval after the worker starts: the first import is the
operator's `orgstream sync`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import structlog

from schemas.config import Settings, TenantSettings
from workers.apply.appliers import Appliers
from workers.errors import ApplyError
from workers.fullsync.failed_callbacks import recover_failed_callbacks
from workers.fullsync.run import SyncBusy, SyncContext, full_sync
from workers.vendors.dingtalk import DingTalkDirectory

_TICK_SECONDS: Final = 1.0
log = structlog.get_logger("orgstream.sync")


class Schedule:
    def __init__(
        self, settings: Settings, appliers: Appliers, context: SyncContext, started: float
    ) -> None:
        self._settings = settings
        self._appliers = appliers
        self._context = context
        self._started = started
        self._recovered_at: dict[str, float] = {}
        # When each tenant's next full sync falls due, as last read from the store; another
        # process's run can only move it later, which the check at that moment finds.
        self._due_at: dict[str, float] = {}

    async def run_forever(self) -> None:
        if not self._settings.sync.schedule:
            return
        while True:
            for tenant in self._settings.tenants:
                await self._tenant(tenant)
            await asyncio.sleep(_TICK_SECONDS)

    async def _tenant(self, tenant: TenantSettings) -> None:
        applier = self._appliers.for_tenant(tenant.id)
        if applier is None:
            return
        try:
            if isinstance(applier.source, DingTalkDirectory):
                await self._recover(tenant, applier.source)
            await self._sync_if_due(tenant)
        except (ApplyError, SyncBusy):
            pass  # vendor or target trouble: the next tick tries again; runs record theirs
        except Exception as exc:  # noqa: BLE001 - the schedule outlives one tenant's bug
            log.error("schedule_failed", tenant=tenant.id, error=f"{type(exc).__name__}: {exc}")

    async def _sync_if_due(self, tenant: TenantSettings) -> None:
        if time.time() < self._due_at.get(tenant.id, 0.0):
            return  # known not due yet: no store query every tick
        interval = self._settings.sync.interval_minutes * 60

        async def due() -> bool:
            last = await self._context.runs.last_started(tenant.id)
            self._due_at[tenant.id] = (last if last is not None else self._started) + interval
            return time.time() >= self._due_at[tenant.id]

        applier = self._appliers.for_tenant(tenant.id)
        if applier is None or not await due():
            return
        await full_sync(tenant.id, applier, self._context, "schedule", only_if=due)
        self._due_at.pop(tenant.id, None)  # read the new run's start next tick

    async def _recover(self, tenant: TenantSettings, source: DingTalkDirectory) -> None:
        every = self._settings.sync.failed_callbacks_minutes * 60
        if time.time() - self._recovered_at.get(tenant.id, 0.0) < every:
            return
        self._recovered_at[tenant.id] = time.time()
        recovered = await recover_failed_callbacks(
            tenant.id, tenant.corp_id, source, self._context.publisher
        )
        applier = self._appliers.for_tenant(tenant.id)
        if recovered.needs_full_sync and applier is not None:
            # Some failed callbacks named no one: only a full sync can tell what they changed.
            await full_sync(tenant.id, applier, self._context, "recovery")
