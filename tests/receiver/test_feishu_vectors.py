"""Every Feishu vector (made and checked with the vendor's SDK) through the real HTTP app:
positives are answered as Feishu expects and publish their events, negatives are refused with
their reason in the log, one public answer on the wire, and publish nothing."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from receiver.publisher import MemoryEventPublisher
from schemas.vendors import feishu_crypto
from tests.vectors import Clock, feishu_settings, load_vectors, request_body, vector_app

FEISHU = load_vectors("feishu")
POSITIVES = {v["id"]: v for v in FEISHU["positive"]}
TOKEN = FEISHU["config"]["verification_token"]

# What each positive vector publishes: (entity, change, id), the ids being the company's own
# (`user_id`, `department_id`), the tenant's defaults.
PUBLISHED: dict[str, list[tuple[str, str, str]]] = {
    "feishu-public-user_created": [("user", "created", "e33ggbyz")],
    "feishu-public-user_updated_name": [("user", "updated", "e33ggbyz")],
    "feishu-public-user_updated_move": [("user", "updated", "e33ggbyz")],
    "feishu-public-user_updated_frozen": [("user", "updated", "e33ggbyz")],
    "feishu-public-user_deleted": [("user", "deleted", "chenjing")],
    "feishu-public-dept_created": [("department", "created", "rd-center")],
    "feishu-public-dept_updated_rename": [("department", "renamed", "rd-center")],
    "feishu-public-dept_updated_move": [("department", "moved", "rd-center")],
    "feishu-public-dept_deleted": [("department", "deleted", "qa")],
    "feishu-public-scope_updated": [
        ("department", "created", "mkt"),
        ("user", "created", "lilei"),
        ("user", "deleted", "hanmeimei"),
    ],
    "feishu-public-plaintext-mode": [("user", "created", "e33ggbyz")],
    "feishu-public-user_deleted-retry": [("user", "deleted", "chenjing")],
}


def send(client: TestClient, vector: dict[str, Any], tenant: str = "gamma") -> Any:
    request = vector["request"]
    headers = {k: v for k, v in request.get("headers", {}).items() if k.lower() != "content-length"}
    return client.post(f"/callbacks/feishu/{tenant}", content=request_body(vector), headers=headers)


def app_for(
    vector: dict[str, Any], clock: Clock | None = None
) -> tuple[TestClient, MemoryEventPublisher]:
    return vector_app(feishu_settings(vector["config"]), vector, clock)


def test_the_url_verification_is_answered_with_its_challenge() -> None:
    vector = POSITIVES["feishu-public-url-verification"]
    client, publisher = app_for(vector)
    response = send(client, vector)
    expected = vector["expected_response"]
    assert response.status_code == expected["status"]
    assert response.headers["content-type"].startswith(expected["content_type"])
    assert response.json() == orjson.loads(expected["body"])
    assert publisher.published == []


@pytest.mark.parametrize("vector_id", sorted(PUBLISHED))
def test_positive_vector_is_acknowledged_and_publishes_its_events(vector_id: str) -> None:
    vector = POSITIVES[vector_id]
    clock = Clock(float(vector["receiver_now"]))
    client, publisher = app_for(vector, clock)
    if original := vector.get("retry_of"):
        first = POSITIVES[original]
        clock.now = float(first["receiver_now"])
        assert send(client, first).status_code == 200
        assert publisher.published
        publisher.published.clear()
        clock.now = float(vector["receiver_now"])
    response = send(client, vector)
    assert response.status_code == 200
    assert response.json() == {"msg": "success"}
    if vector.get("retry_of"):
        assert publisher.published == []  # the same event_id: published once
        return
    published = [(e.entity, e.change, e.entity_id) for e in publisher.published]
    assert published == PUBLISHED[vector_id]
    for event in publisher.published:
        assert (event.tenant, event.vendor) == ("gamma", "feishu")
        assert TOKEN not in event.raw  # the verification token stays off the topic
    assert len({e.event_id for e in publisher.published}) == len(published)


def test_a_user_event_keeps_the_event_it_came_from_less_the_token() -> None:
    vector = POSITIVES["feishu-public-user_created"]
    client, publisher = app_for(vector)
    send(client, vector)
    [event] = publisher.published
    sent = orjson.loads(vector["plaintext"])
    del sent["header"]["token"]
    assert orjson.loads(event.raw) == sent
    assert event.occurred_at == "2026-01-01T00:00:00.001Z"  # header.create_time


def test_the_same_event_in_plaintext_mode_has_the_same_event_id() -> None:
    """A redelivery keeps its event_id whichever way it comes, so the worker dedupes it."""
    encrypted, plain = (
        POSITIVES["feishu-public-user_created"],
        POSITIVES["feishu-public-plaintext-mode"],
    )
    ids = []
    for vector in (encrypted, plain):
        client, publisher = app_for(vector)
        assert send(client, vector).status_code == 200
        assert send(client, vector).status_code == 200  # again: not published twice
        ids.append([e.event_id for e in publisher.published])
    assert ids[0] == ids[1]
    assert len(ids[0]) == 1


@pytest.mark.parametrize("vector", FEISHU["negative"], ids=lambda v: v["id"])
def test_negative_vector_is_refused_with_its_reason(vector: dict[str, Any]) -> None:
    client, publisher = app_for(vector)
    with capture_logs() as logs:
        response = send(client, vector)
    rejections = [entry for entry in logs if entry["event"] == "callback_rejected"]
    assert [entry["reason"] for entry in rejections] == [vector["expected"]["reason"]]
    if vector["expected"]["reason"] == "body_too_large":
        assert response.status_code == 413
    else:  # every other refusal looks the same from outside
        assert (response.status_code, response.json()) == (400, {"error": "rejected"})
    assert publisher.published == []


def test_refusals_of_tampered_ciphertexts_cannot_be_told_apart() -> None:
    """No padding oracle: bad padding, bad UTF-8, bad JSON and a wrong token, signed or not,
    are answered alike, status, body and headers."""
    vector = POSITIVES["feishu-public-user_created"]
    key = hashlib.sha256(FEISHU["config"]["encrypt_key"].encode()).digest()
    encrypt = orjson.loads(vector["request"]["body"])["encrypt"]
    plaintext = feishu_crypto.decrypt(key, encrypt)
    wrong_token = plaintext.replace(TOKEN.encode(), b"x" * len(TOKEN))
    tampered = [
        feishu_crypto.encrypt(hashlib.sha256(b"other").digest(), plaintext),  # padding
        feishu_crypto.encrypt(key, b"\xff\xfe" + plaintext),  # not UTF-8
        feishu_crypto.encrypt(key, b"{not json"),
        feishu_crypto.encrypt(key, wrong_token),
    ]
    client, publisher = app_for(vector)
    timestamp, nonce = "1767225610", "n0nce"
    answers = set()
    for ciphertext in tampered:
        body = orjson.dumps({"encrypt": ciphertext})
        for signed in (True, False):
            headers = {"Content-Type": "application/json"}
            if signed:
                sig = feishu_crypto.signature(
                    timestamp, nonce, FEISHU["config"]["encrypt_key"], body
                )
                headers |= {
                    "X-Lark-Request-Timestamp": timestamp,
                    "X-Lark-Request-Nonce": nonce,
                    "X-Lark-Signature": sig,
                }
            response = client.post("/callbacks/feishu/gamma", content=body, headers=headers)
            answers.add((response.status_code, response.content, response.headers["content-type"]))
    assert answers == {(400, b'{"error":"rejected"}', "application/json")}
    assert publisher.published == []


def test_an_unknown_tenant_gets_the_same_answer() -> None:
    vector = POSITIVES["feishu-public-user_created"]
    client, _ = app_for(vector)
    response = send(client, vector, tenant="nobody")
    assert (response.status_code, response.json()) == (400, {"error": "rejected"})


def test_the_vendors_published_decryption_sample() -> None:
    [sample] = FEISHU["vendor_published_vectors"]
    key = hashlib.sha256(sample["config"]["encrypt_key"].encode()).digest()
    assert feishu_crypto.decrypt(key, sample["encrypt"]) == sample["plaintext"].encode()


def test_an_unencrypted_tenant_is_warned_about_at_start() -> None:
    vector = POSITIVES["feishu-public-plaintext-mode"]
    with capture_logs() as logs:
        app_for(vector)
    assert [e["tenant"] for e in logs if e["event"] == "feishu_events_unencrypted"] == ["gamma"]


def test_with_unsigned_challenges_off_nothing_unsigned_is_decrypted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vector = POSITIVES["feishu-public-url-verification"]
    settings = feishu_settings(vector["config"], accept_unsigned_challenge=False)
    client, _ = vector_app(settings, vector)

    def never(*_: object) -> bytes:
        raise AssertionError("decrypted an unsigned request")

    monkeypatch.setattr(feishu_crypto, "decrypt", never)
    with capture_logs() as logs:
        response = send(client, vector)
    assert (response.status_code, response.json()) == (400, {"error": "rejected"})
    assert [e["reason"] for e in logs if e["event"] == "callback_rejected"] == ["bad_signature"]
