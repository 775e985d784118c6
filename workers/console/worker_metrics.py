"""What the workers already export, read the way Prometheus reads it: each worker's `/metrics`
(`console.worker_metrics`, by default the one worker at `worker.metrics_host:metrics_port`),
for the freshness histogram per tenant and the SCIM targets in quarantine. Freshness over a
window is the difference of two readings, with the quantile interpolated inside its bucket as
Prometheus' `histogram_quantile` does."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

Buckets = dict[float, float]  # upper bound → observations at or below it (cumulative)
FRESHNESS = "orgstream_freshness_seconds"
QUARANTINED = "orgstream_scim_target_quarantined"


@dataclass(frozen=True)
class WorkerReading:
    freshness: Mapping[str, Buckets]  # by tenant, summed over the workers that answered
    quarantined: frozenset[str]  # SCIM target URLs a worker holds in quarantine
    answered: int  # how many of the workers answered


READ_SECONDS = 3.0


async def read_workers(urls: Sequence[str]) -> WorkerReading | None:
    """One reading of every worker; None when none answered."""
    async with httpx.AsyncClient(timeout=READ_SECONDS) as client:
        texts = await asyncio.gather(*(_text(client, url) for url in urls))
    answered = [t for t in texts if t is not None]
    if not answered:
        return None
    freshness: dict[str, Buckets] = defaultdict(dict)
    quarantined: set[str] = set()
    read = 0
    for text in answered:
        try:
            samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
            buckets = [(s.labels.get("tenant", ""), float(s.labels["le"]), s.value)
                       for s in samples if s.name == f"{FRESHNESS}_bucket"]  # fmt: skip
        except (ValueError, KeyError):
            continue  # not a metrics page (a proxy's error page, a wrong URL): no answer
        read += 1
        for tenant, bound, count in buckets:
            freshness[tenant][bound] = freshness[tenant].get(bound, 0.0) + count
        quarantined |= {s.labels.get("target", "") for s in samples
                        if s.name == QUARANTINED and s.value >= 1}  # fmt: skip
    if not read:
        return None
    return WorkerReading(dict(freshness), frozenset(quarantined), read)


def quantile(q: float, now: Buckets, before: Buckets | None = None) -> float | None:
    """The q-quantile of what was observed between two readings (`before` None: since the
    workers started); None when nothing was."""
    window = {bound: count - (before or {}).get(bound, 0.0) for bound, count in now.items()}
    if any(count < 0 for count in window.values()):  # a worker restarted: its counts began again
        window = dict(now)
    bounds = sorted(window)
    total = window[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, below, lower = q * total, 0.0, 0.0
    for bound in bounds:
        count = window[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # past the last finite bucket: its bound is all that is known
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        below, lower = count, bound
    return lower


async def _text(client: httpx.AsyncClient, url: str) -> str | None:
    try:
        answer = await client.get(url)
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None
