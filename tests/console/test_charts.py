"""The lag and throughput charts: samples taken by the console itself, drawn as SVG."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time

from starlette.testclient import TestClient

from tests.console.conftest import VIEWER_TOKEN, console_settings, log_in
from tests.console.test_pages import entry, recorded
from workers.console.app import create_console_app
from workers.console.charts import HEIGHT, WIDTH, charts_of
from workers.console.samples import Sample


def test_each_group_and_the_throughput_become_a_line_scaled_to_its_top() -> None:
    samples = [
        Sample(1000.0, {"workers": 0, "resolver": 5}, 0, 60.0),
        Sample(1060.0, {"workers": 10, "resolver": 5}, 30, 60.0),
        Sample(1090.0, None, 0, 30.0),  # Kafka did not answer: no lag point, a throughput one
        Sample(1120.0, {"workers": 5, "resolver": 0}, 60, 30.0),
    ]
    lag_resolver, lag_workers, outcomes = charts_of(samples)
    assert lag_workers.title == "Lag of workers (events)"
    assert lag_workers.top == 10
    assert lag_workers.points == f"0.0,{HEIGHT}.0 {WIDTH / 2:.1f},0.0 {WIDTH}.0,{HEIGHT / 2:.1f}"
    assert lag_resolver.last == 0
    assert outcomes.title == "Outcomes recorded per minute"
    assert [float(p.split(",")[1]) for p in outcomes.points.split()] == [160.0, 120.0, 160.0, 0.0]
    assert outcomes.top == 120  # 60 outcomes in 30 s
    assert charts_of(samples[:1]) == []  # one sample is not a line


def test_the_page_draws_what_the_console_sampled(store_url: str) -> None:
    settings = console_settings(store_url)
    settings = dataclasses.replace(
        settings, console=dataclasses.replace(settings.console, sample_seconds=1)
    )
    with TestClient(create_console_app(settings)) as console:
        log_in(console, VIEWER_TOKEN)
        asyncio.run(recorded(store_url, [entry(i, recorded_at="2099-01-01T00:00:00.000Z")
                                         for i in range(5)]))  # fmt: skip
        deadline = time.monotonic() + 10
        page = console.get("/charts").text
        while "<polyline" not in page and time.monotonic() < deadline:
            time.sleep(0.3)
            page = console.get("/charts").text
    assert "Outcomes recorded per minute" in page
    assert re.search(r'<polyline points="[\d., ]+"', page)
    assert "Lag of" not in page  # Kafka is down in these tests: no lag to draw
