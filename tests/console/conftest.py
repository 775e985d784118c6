"""The console over a store of its own, with Kafka nowhere (pages say so and still answer)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from schemas.config import Settings, parse_settings
from workers.console.app import create_console_app

VIEWER_TOKEN = "viewer-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789"


def console_settings(store_url: str, **extra: Any) -> Settings:
    tenant = {"id": "acme", "vendor": "wecom", "corp_id": "wwacme", "callback_token": "t",
              "encoding_aes_key": "a" * 43}  # fmt: skip
    raw = {
        "store": {"url": store_url},
        "kafka": {"bootstrap_servers": "127.0.0.1:9"},  # nothing listens: Kafka is down
        "console": {"users": [
            {"name": "vera", "role": "viewer", "token": VIEWER_TOKEN},
            {"name": "otto", "role": "operator", "token": OPERATOR_TOKEN},
        ]},
        "tenants": [tenant, {**tenant, "id": "globex", "corp_id": "wwglobex"}],
        **extra,
    }  # fmt: skip
    return parse_settings(raw, environ={})


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def console(store_url: str) -> Iterator[TestClient]:
    with TestClient(create_console_app(console_settings(store_url))) as client:
        yield client


def log_in(client: TestClient, token: str) -> str:
    """Log in; return the session's CSRF token, as the pages' forms carry it."""
    answer = client.post("/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = client.get("/audit")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)
