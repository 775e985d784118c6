"""Freshness and quarantine from the workers' own /metrics: summed over the workers, a window
as the difference of two readings, quantiles interpolated as Prometheus does."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from workers.console.worker_metrics import quantile, read_workers

INF = math.inf


def test_quantiles_of_a_window_between_two_readings() -> None:
    now = {0.1: 0.0, 0.5: 10.0, 1.0: 20.0, INF: 20.0}
    assert quantile(0.5, now) == pytest.approx(0.5)
    assert quantile(0.99, now) == pytest.approx(0.99)
    before = {0.1: 0.0, 0.5: 10.0, 1.0: 10.0, INF: 10.0}  # the first ten: before the window
    assert quantile(0.5, now, before) == pytest.approx(0.75)
    assert quantile(0.5, now, now) is None  # nothing observed in the window
    assert quantile(0.5, {}) is None
    assert quantile(0.99, {1.0: 0.0, INF: 5.0}) == 1.0  # past the last bound: that bound
    restarted = {0.1: 0.0, 0.5: 2.0, 1.0: 2.0, INF: 2.0}  # fewer than before: counts began again
    assert quantile(0.5, restarted, before) == pytest.approx(0.3)


def worker_text(tenant_seconds: list[float], quarantined: bool) -> bytes:
    registry = CollectorRegistry()
    fresh = Histogram("orgstream_freshness_seconds", "f", ["tenant"], registry=registry,
                      buckets=(0.5, 1, 5))  # fmt: skip
    for seconds in tenant_seconds:
        fresh.labels("acme").observe(seconds)
    held = Gauge("orgstream_scim_target_quarantined", "q", ["target"], registry=registry)
    held.labels("http://target.test/v2").set(1 if quarantined else 0)
    return generate_latest(registry)


@pytest.fixture
def workers() -> Iterator[list[str]]:
    """Two workers' /metrics, and a third URL where nothing answers."""
    texts = {"/one": worker_text([0.2, 0.7], False), "/two": worker_text([3.0], True),
             "/html": b"<html>502 Bad Gateway</html>"}  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = texts.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield [f"{base}/one", f"{base}/two", f"{base}/html", "http://127.0.0.1:9/metrics"]
    server.shutdown()


def test_every_worker_is_read_and_summed(workers: list[str]) -> None:
    reading = asyncio.run(read_workers(workers))
    assert reading is not None
    assert reading.answered == 2  # the error page is no answer
    assert reading.freshness["acme"] == {0.5: 1.0, 1.0: 2.0, 5.0: 3.0, INF: 3.0}
    assert reading.quarantined == frozenset({"http://target.test/v2"})
    assert asyncio.run(read_workers(workers[2:])) is None  # nobody answered with metrics
