"""Every WeCom vector from the vendor SDK, through the real HTTP app."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from receiver import create_app
from receiver.publisher import MemoryEventPublisher
from schemas.event import ContactEvent
from tests.receiver.served import served_metrics
from tests.vectors import Clock, load_vectors, request_body, vector_app, wecom_settings

WECOM = load_vectors("wecom")
POSITIVES = {v["id"]: v for v in WECOM["positive"]}

# The vectors' `normalized.op` -> (entity, change) we publish; None: acknowledged, not published.
EXPECTED: dict[str, tuple[str, set[str]] | None] = {
    "user.upsert": ("user", {"created", "updated"}),
    "user.rename_id": ("user", {"renamed"}),
    "user.deactivate": ("user", {"updated"}),
    "user.delete": ("user", {"deleted"}),
    "group.upsert": ("department", {"created", "renamed", "updated"}),
    "group.move": ("department", {"moved"}),
    "group.delete": ("department", {"deleted"}),
    "tag.members": None,
}


def send(client: TestClient, vector: dict[str, Any]) -> Any:
    request = vector["request"]
    url = f"/callbacks/wecom/acme?{request['query_string']}"
    headers = {k: v for k, v in request.get("headers", {}).items() if k.lower() != "content-length"}
    if request["method"] == "GET":
        return client.get(url, headers=headers)
    return client.post(url, content=request_body(vector), headers=headers)


def app_for(
    vector: dict[str, Any], clock: Clock | None = None
) -> tuple[TestClient, MemoryEventPublisher]:
    return vector_app(wecom_settings(vector["config"]), vector, clock)


@pytest.mark.parametrize("vector", WECOM["positive"], ids=lambda v: v["id"])
def test_positive_vector_gives_expected_reply_and_events(vector: dict[str, Any]) -> None:
    """A vendor-signed callback is answered as WeCom requires and yields the expected event."""
    clock = Clock(float(vector["receiver_now"]))
    client, publisher = app_for(vector, clock)
    if original := vector.get("retry_of"):
        first = POSITIVES[original]
        clock.now = float(first["receiver_now"])
        assert send(client, first).status_code == 200
        assert len(publisher.published) == 1
        publisher.published.clear()
        clock.now = float(vector["receiver_now"])
    response = send(client, vector)
    expected = vector["expected_response"]
    assert response.status_code == expected["status"]
    assert response.text == expected["body"]
    if vector["kind"] == "url_verification" or vector.get("expected_publish") is False:
        assert publisher.published == []
        return
    wanted = EXPECTED[vector["normalized"]["op"]]
    if wanted is None:
        assert publisher.published == []
        return
    [event] = publisher.published
    entity, changes = wanted
    normalized = vector["normalized"]
    assert (event.entity, event.tenant, event.vendor) == (entity, "acme", "wecom")
    assert event.change in changes
    assert event.entity_id == str(normalized.get("user_id", normalized.get("department_id")))
    assert event.raw == vector["plaintext"]
    for name in ("departments", "main_department", "parent_id"):
        if name in normalized:
            assert event.attributes[name] == normalized[name]
    if "new_user_id" in normalized:
        assert event.attributes["new_userid"] == normalized["new_user_id"]


@pytest.mark.parametrize("vector", WECOM["negative"], ids=lambda v: v["id"])
def test_negative_vector_is_rejected_with_its_reason(vector: dict[str, Any]) -> None:
    """A forged or malformed callback gets a 4xx, logs its reason code, and publishes nothing."""
    client, publisher = app_for(vector)
    with capture_logs() as logs:
        response = send(client, vector)
    assert 400 <= response.status_code < 500
    rejections = [entry for entry in logs if entry["event"] == "callback_rejected"]
    assert [entry["reason"] for entry in rejections] == [vector["expected"]["reason"]]
    assert publisher.published == []


def test_every_crypto_failure_gets_one_identical_answer() -> None:
    """No padding oracle: wrong key, tampered text and foreign receive id answer alike."""
    crypto_cases = [
        v
        for v in WECOM["negative"]
        if v["expected"]["reason"] in {"decrypt_failed", "receive_id_mismatch"}
        or v["id"].endswith("malformed-base64")
    ]
    answers = set()
    for vector in crypto_cases:
        client, _ = app_for(vector)
        response = send(client, vector)
        answers.add((response.status_code, response.text))
    assert len(crypto_cases) >= 4
    assert len(answers) == 1


def test_unknown_tenant_is_404_and_publishes_nothing() -> None:
    vector = POSITIVES["wecom-public-delete_user"]
    client, publisher = app_for(vector)
    response = client.post(
        f"/callbacks/wecom/nobody?{vector['request']['query_string']}",
        content=request_body(vector),
    )
    assert response.status_code == 404
    assert response.json() == {"error": "unknown_tenant"}
    assert publisher.published == []


def test_broker_without_ack_answers_503_and_the_retry_is_published() -> None:
    """No ack -> 503 so WeCom retries; the retry of the same callback then goes through."""
    vector = POSITIVES["wecom-public-delete_user"]
    client, publisher = app_for(vector)
    publisher.fail = True
    assert send(client, vector).status_code == 503
    assert publisher.published == []
    publisher.fail = False
    assert send(client, vector).status_code == 200
    assert [e.entity_id for e in publisher.published] == ["chenjing"]


def test_health_and_readiness_follow_the_broker() -> None:
    client, publisher = app_for(POSITIVES["wecom-public-delete_user"])
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    publisher.fail = True
    assert client.get("/readyz").status_code == 503


def test_metrics_count_callbacks_by_outcome() -> None:
    vector = POSITIVES["wecom-public-delete_user"]
    client, _ = app_for(vector)
    send(client, vector)
    text = served_metrics(client)
    assert 'orgstream_callbacks_total{outcome="accepted",tenant="acme",vendor="wecom"} 1.0' in text


class BrokenPublisher(MemoryEventPublisher):
    async def publish(self, events: Sequence[ContactEvent], traceparent: str) -> None:
        raise RuntimeError("publisher state is inconsistent")


def test_a_bug_while_publishing_is_a_counted_500_that_leaks_nothing() -> None:
    """An unexpected error answers 500, so WeCom retries, and counts toward the 5xx alert."""
    vector = POSITIVES["wecom-public-delete_user"]
    settings = wecom_settings(vector["config"])
    app = create_app(settings, publisher=BrokenPublisher(), clock=Clock(vector["receiver_now"]))
    client = TestClient(app)
    with capture_logs() as logs:
        response = send(client, vector)
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error"}
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == [
        "callback_failed"
    ]
    text = served_metrics(client)
    counted = 'orgstream_callbacks_total{outcome="internal_error",tenant="acme",vendor="wecom"} 1.0'
    assert counted in text
    assert "process_resident_memory_bytes" in text
