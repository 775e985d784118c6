"""What the receiver serves outside its callback port, read the way a scraper would."""

from __future__ import annotations

from prometheus_client import generate_latest
from starlette.testclient import TestClient


def served_metrics(client: TestClient) -> str:
    """The text the metrics port serves for this app; the callback port has no /metrics."""
    assert client.get("/metrics").status_code == 404
    return generate_latest(client.app.state.metrics.registry).decode()  # type: ignore[attr-defined]
