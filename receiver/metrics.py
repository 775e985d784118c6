"""Receiver metrics, on a registry of the app's own (so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector


@dataclass(frozen=True, slots=True)
class ReceiverMetrics:
    registry: CollectorRegistry
    callbacks: Counter
    publish_seconds: Histogram
    # The labelled children, looked up once: a callback should not pay for `labels()`.
    _counters: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    def count(self, vendor: str, tenant: str, outcome: str) -> None:
        key = (vendor, tenant, outcome)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = self.callbacks.labels(vendor, tenant, outcome)
        child.inc()

    @classmethod
    def create(cls) -> ReceiverMetrics:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # process_resident_memory_bytes, CPU, open fds
        return cls(
            registry=registry,
            callbacks=Counter(
                "orgstream_callbacks",
                "Callbacks by vendor, tenant and outcome (accepted, duplicate, ignored, "
                "handshake, unavailable (503), internal_error (500), or the rejection reason).",
                ["vendor", "tenant", "outcome"],
                registry=registry,
            ),
            publish_seconds=Histogram(
                "orgstream_publish_seconds",
                "Time from a verified callback to the broker's ack.",
                ["vendor"],
                registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            ),
        )
