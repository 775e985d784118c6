"""The vendors' SDK-made callback vectors (tests/fixtures/*.json) and settings built from them."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from receiver import create_app
from receiver.publisher import MemoryEventPublisher
from schemas.config import Settings, parse_settings

FIXTURES = Path(__file__).parent / "fixtures"


@cache
def load_vectors(vendor: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{vendor}.json").read_text(encoding="utf-8"))
    return data


def request_body(vector: dict[str, Any]) -> bytes:
    """The exact body, rebuilt from `body_generator` for the oversize case."""
    request = vector["request"]
    generator = vector.get("body_generator")
    if generator is None:
        return str(request.get("body") or "").encode()
    text: str = generator["prefix"] + generator["repeat"] * generator["count"] + generator["suffix"]
    body = text.encode()
    assert hashlib.sha256(body).hexdigest() == generator["sha256"]
    return body


def wecom_settings(config: dict[str, Any], tenant: str = "acme", **tables: Any) -> Settings:
    raw: dict[str, Any] = {
        "tenants": [
            {
                "id": tenant,
                "vendor": "wecom",
                "corp_id": config["corp_id"],
                "callback_token": config["token"],
                "encoding_aes_key": config["encoding_aes_key"],
            }
        ],
        **tables,
    }
    return parse_settings(raw, environ={})


def dingtalk_settings(config: dict[str, Any], tenant: str = "beta", **tables: Any) -> Settings:
    """A DingTalk tenant in the mode the vector was made for: the owner key is the app key
    for event subscriptions and the corp id for legacy registrations
    (docs/vendors.md §2.1)."""
    mode = "subscription" if config.get("owner_key_kind") == "appKey" else "legacy"
    raw: dict[str, Any] = {
        "tenants": [
            {
                "id": tenant,
                "vendor": "dingtalk",
                "corp_id": config.get("corp_id", config["owner_key"]),
                "app_key": config.get("app_key", config["owner_key"]),
                "callback_mode": mode,
                "callback_token": config["token"],
                "aes_key": config["aes_key"],
            }
        ],
        **tables,
    }
    return parse_settings(raw, environ={})


def feishu_settings(config: dict[str, Any], tenant: str = "gamma", **keys: Any) -> Settings:
    """A Feishu tenant with the vector's app (and `keys` besides); no encrypt key when the
    vector was made without."""
    entry: dict[str, Any] = {
        "id": tenant,
        "vendor": "feishu",
        "app_id": config["app_id"],
        "tenant_key": config["tenant_key"],
        "verification_token": config["verification_token"],
    }
    if config.get("encrypt_key"):
        entry["encrypt_key"] = config["encrypt_key"]
    return parse_settings({"tenants": [entry | keys]}, environ={})


class Clock:
    """The receiver's clock, frozen at whatever `receiver_now` the current vector names."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def vector_app(
    settings: Settings, vector: dict[str, Any], clock: Clock | None = None
) -> tuple[TestClient, MemoryEventPublisher]:
    """The real receiver app for `settings`, its clock at the vector's `receiver_now`, and the
    publisher that collects what it publishes."""
    publisher = MemoryEventPublisher()
    clock = clock or Clock(float(vector["receiver_now"]))
    return TestClient(create_app(settings, publisher=publisher, clock=clock)), publisher
