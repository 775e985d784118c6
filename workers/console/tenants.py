"""The tenants page: per tenant, what happened last and what needs a person; the lag of every
consumer group, as `orgstream lag --json` measures it."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from schemas.event import utc_iso
from workers.console.page import Console
from workers.console.sessions import Session
from workers.console.sources import Unreachable
from workers.console.worker_metrics import quantile, read_workers
from workers.kafka.lag import GroupLag
from workers.store.history_pages import HistoryRow
from workers.store.sync_runs import SyncRun


@dataclass(frozen=True)
class TenantState:
    id: str
    vendor: str
    last: HistoryRow | None
    apply_p50_ms: float | None  # over the last hour
    apply_p99_ms: float | None
    fresh_p50_s: float | None  # event → applied, over the last hour (from the workers' metrics)
    fresh_p99_s: float | None
    quarantined: bool | None  # the tenant's SCIM target; None: no worker answered
    parked: int
    held: int
    dead_letters: int | None  # None: Kafka could not be read
    last_sync: SyncRun | None

    @property
    def needs_a_person(self) -> bool:
        failed_sync = self.last_sync is not None and self.last_sync.status == "failed"
        return bool(self.held or self.dead_letters or failed_sync or self.quarantined)


async def tenants_page(request: Request, console: Console, session: Session) -> Response:
    sources = console.sources
    lags: list[GroupLag] = []
    unreachable = None
    dead_by_tenant: dict[str, int] | None = None
    try:
        lags = await sources.lags()
        records = await sources.dead_letters()
    except Unreachable as exc:
        unreachable = str(exc)
    else:  # the dead letters no one has re-driven yet
        redriven = await sources.redriven.marks()
        dead_by_tenant = {}
        for record in records:
            if (record.topic, record.position) not in redriven:
                dead_by_tenant[record.tenant] = dead_by_tenant.get(record.tenant, 0) + 1
    waiting = await sources.parking.counts()
    sampler = console.sampler
    reading = await read_workers(sampler.worker_urls) if sampler else None
    before = sampler.reading_before(time.time() - 3600) if sampler else None
    hour_ago = utc_iso(time.time() - 3600)
    states = []
    for tenant in sources.settings.tenants:
        durations = await sources.history.durations(tenant.id, hour_ago)
        runs = await sources.runs.listed(tenant.id, limit=1)
        now_buckets = reading.freshness.get(tenant.id, {}) if reading else {}
        before_buckets = before.freshness.get(tenant.id) if before else None
        target = sources.settings.scim_for(tenant).base_url
        states.append(
            TenantState(
                id=tenant.id,
                vendor=tenant.vendor,
                last=await sources.history.latest(tenant.id),
                apply_p50_ms=_quantile(durations, 50),
                apply_p99_ms=_quantile(durations, 99),
                fresh_p50_s=quantile(0.5, now_buckets, before_buckets),
                fresh_p99_s=quantile(0.99, now_buckets, before_buckets),
                quarantined=None if reading is None else target in reading.quarantined,
                parked=waiting.get((tenant.id, "parked"), 0),
                held=waiting.get((tenant.id, "held"), 0),
                dead_letters=None if dead_by_tenant is None else dead_by_tenant.get(tenant.id, 0),
                last_sync=runs[0] if runs else None,
            )
        )
    return console.render(request, "tenants.html", session, states=states, lags=lags,
                          unreachable=unreachable)  # fmt: skip


def _quantile(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
