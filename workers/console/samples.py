"""Lag and throughput over the last hours, sampled by the console itself: every
`console.sample_seconds` it measures each consumer group's total lag (as `orgstream lag` does)
and counts the outcomes recorded in the history since the previous sample. Kept in memory:
a restart starts the charts again."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Final

import structlog

from schemas.event import utc_iso
from workers.console.sources import Sources, Unreachable
from workers.console.worker_metrics import WorkerReading, read_workers

log = structlog.get_logger("orgstream.console")

KEEP_SECONDS: Final = 6 * 3600


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    lag: dict[str, int] | None  # total lag by consumer group; None: Kafka did not answer
    outcomes: int  # history rows recorded since the previous sample
    seconds: float  # since the previous sample

    @property
    def per_minute(self) -> float:
        return self.outcomes * 60 / self.seconds if self.seconds else 0.0


class Sampler:
    def __init__(self, sources: Sources, every: float) -> None:
        self._sources = sources
        self.every = every
        kept = max(2, int(KEEP_SECONDS / every))
        self.samples: deque[Sample] = deque(maxlen=kept)
        # The workers' metrics as read at each sample: freshness over a window is a difference.
        self.readings: deque[tuple[float, WorkerReading]] = deque(maxlen=kept)
        self._last = time.time()

    @property
    def worker_urls(self) -> list[str]:
        settings = self._sources.settings
        if settings.console.worker_metrics:
            return list(settings.console.worker_metrics)
        worker = settings.worker
        return (
            [f"http://{worker.metrics_host}:{worker.metrics_port}/metrics"]
            if worker.metrics_port
            else []
        )

    def reading_before(self, moment: float) -> WorkerReading | None:
        """The latest reading taken at or before `moment`; None if none is that old."""
        older = [reading for at, reading in self.readings if at <= moment]
        return older[-1] if older else None

    async def take(self) -> Sample:
        now = time.time()
        try:
            lag: dict[str, int] | None = {g.group: g.total for g in await self._sources.lags()}
        except Unreachable:
            lag = None
        counted = await self._sources.history.count_since(utc_iso(self._last))
        reading = await read_workers(self.worker_urls)
        if reading is not None:
            self.readings.append((now, reading))
        sample = Sample(now, lag, counted, now - self._last)
        self._last = now
        self.samples.append(sample)
        return sample

    async def run(self) -> None:
        """Sample until cancelled; a failed sample is logged and the next one tried."""
        while True:
            try:
                await self.take()
            except Exception as exc:  # noqa: BLE001 - the charts must not take the console down
                log.warning("console_sample_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(self.every)
