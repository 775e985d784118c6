"""Syncs started from the console: `orgstream sync` as a child, watched from the Runs page,
each start and end in the audit trail; a viewer cannot start one."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from starlette.testclient import TestClient

from tests.console.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, console_settings, log_in
from tests.console.test_access import audited
from workers.console.app import create_console_app


def test_a_run_started_here_is_watched_and_audited(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "orgstream.toml"
    config.write_text("this is not TOML [", encoding="utf-8")  # the child refuses it
    with TestClient(create_console_app(console_settings(store_url), config)) as console:
        viewer_csrf = log_in(console, VIEWER_TOKEN)
        refused = console.post("/runs/start", data={"tenant": "acme", "csrf": viewer_csrf})
        assert refused.status_code == 403

        csrf = log_in(console, OPERATOR_TOKEN)
        form = {"tenant": "acme", "dry_run": "yes", "csrf": csrf}
        started = console.post("/runs/start", data=form, follow_redirects=False)
        assert started.status_code == 303
        page_url = started.headers["location"]
        assert re.fullmatch(r"/runs/started/[0-9a-f]{12}", page_url)
        deadline = time.monotonic() + 30
        page = console.get(page_url).text
        while 'id="state">Running' in page and time.monotonic() < deadline:
            assert '<meta http-equiv="refresh"' in page  # it reloads itself while it runs
            time.sleep(0.3)
            page = console.get(page_url).text
        assert 'id="state">Ended' in page
        assert "exit code 2" in page
        assert "not valid TOML" in page  # what the child said, shown
        assert "/runs/started/" in console.get("/runs").text
    trail = asyncio.run(audited(store_url))
    assert trail == [("otto", "dry-run ended", "acme"), ("otto", "dry-run", "acme")]


def test_without_a_configuration_file_nothing_can_be_started(console: TestClient) -> None:
    csrf = log_in(console, OPERATOR_TOKEN)
    assert "started without a configuration file" in console.get("/runs").text
    answer = console.post("/runs/start", data={"tenant": "acme", "csrf": csrf})
    assert answer.status_code == 409
