"""A process's Prometheus /metrics on a port of its own (the worker's, the directory's)."""

from __future__ import annotations

import prometheus_client

from schemas.config import ConfigError


def serve_metrics_on(table: str, host: str, port: int) -> None:
    """Listen on `port` (0: no metrics); a port taken is a configuration error naming
    `<table>.metrics_port`."""
    if not port:
        return
    try:
        prometheus_client.start_http_server(port, host)
    except OSError as exc:
        raise ConfigError(f"{table}.metrics_port: cannot listen on {port}: {exc.strerror}") from exc
