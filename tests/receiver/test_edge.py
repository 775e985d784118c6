"""The receiver's edge under attack: no oracle in anything served, no plaintext echoed, no 5xx
from anyone, numbers as the vendors write them and nothing else, small events however many ids
a callback lists, and key rotation without a lost callback."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from receiver import create_app
from receiver.publisher import MemoryEventPublisher
from schemas.event import encode
from schemas.vendors import crypto
from tests.receiver.served import served_metrics
from tests.receiver.wire import (
    Keys,
    Tenant,
    contact_xml,
    dingtalk_post,
    wecom_handshake,
    wecom_post,
    with_bad_padding,
)

DELETE = contact_xml("delete_user", UserID="zhangsan")


def post_wecom(client: TestClient, query: str, body: bytes) -> Any:
    return client.post(f"/callbacks/wecom/acme?{query}", content=body)


def post_dingtalk(client: TestClient, query: str, body: bytes) -> Any:
    return client.post(f"/callbacks/dingtalk/beta?{query}", content=body)


def everything_served(client: TestClient, response: Any) -> tuple[Any, ...]:
    """The reply, its headers (less the date) and the metrics: all that the outside sees."""
    headers = {k: v for k, v in response.headers.items() if k.lower() != "date"}
    metrics = [
        line
        for line in served_metrics(client).splitlines()
        if line.startswith("orgstream_") and "_created" not in line
    ]
    return response.status_code, response.content, headers, metrics


def test_padding_and_receive_id_failures_move_exactly_the_same_counters() -> None:
    """The metrics oracle: a chosen block appended (a padding failure) and a ciphertext made
    for another corp (a receive-id failure) are told apart only in the operator's log."""
    tenant = Tenant()
    captured = crypto.encrypt(tenant.keys.aes_key, DELETE, tenant.corp_id)
    padding_failure = with_bad_padding(tenant.keys, captured)
    foreign = crypto.encrypt(tenant.keys.aes_key, DELETE, "wwsomeoneelse")
    seen, reasons = [], []
    for encrypt in (padding_failure, foreign):
        client, publisher = tenant.client()
        with capture_logs() as logs:
            response = post_wecom(client, *wecom_post(tenant.keys, "", encrypt=encrypt))
        seen.append(everything_served(client, response))
        reasons += [e["reason"] for e in logs if e["event"] == "callback_rejected"]
        assert publisher.published == []
    assert seen[0] == seen[1]
    assert seen[0][0] == 400
    assert reasons == ["decrypt_failed", "receive_id_mismatch"]  # the operator still knows


def test_a_plaintext_that_is_no_callback_answers_like_any_decryption_failure() -> None:
    tenant = Tenant()
    answers = set()
    for plaintext in (b"<xml><Event>change_contact", b"{}", DELETE):
        client, _ = tenant.client()
        corp = tenant.corp_id if plaintext != DELETE else "wwother"
        response = post_wecom(client, *wecom_post(tenant.keys, corp, plaintext))
        answers.add((response.status_code, response.content))
    assert answers == {(400, b'{"error":"decrypt_failed"}')}


def test_the_handshake_echoes_only_a_short_alphanumeric_string() -> None:
    """A signed GET whose echostr is a captured POST's Encrypt gets the common 4xx, not the
    callback's plaintext (names, mobiles)."""
    tenant = Tenant()
    client, _ = tenant.client()
    honest = crypto.encrypt(tenant.keys.aes_key, b"4Hf9s2Lq0", tenant.corp_id)
    assert client.get(f"/callbacks/wecom/acme?{wecom_handshake(tenant.keys, honest)}").text == (
        "4Hf9s2Lq0"
    )
    captured = crypto.encrypt(tenant.keys.aes_key, DELETE, tenant.corp_id)
    too_long = crypto.encrypt(tenant.keys.aes_key, b"a" * 65, tenant.corp_id)
    foreign = crypto.encrypt(tenant.keys.aes_key, b"4Hf9s2Lq0", "wwsomeoneelse")
    for echostr in (captured, too_long, foreign):
        response = client.get(f"/callbacks/wecom/acme?{wecom_handshake(tenant.keys, echostr)}")
        assert (response.status_code, response.content) == (400, b'{"error":"decrypt_failed"}')
        assert b"zhangsan" not in response.content


def test_an_envelope_declaring_an_unknown_encoding_is_a_400() -> None:
    tenant = Tenant()
    client, _ = tenant.client()
    envelope = '<?xml version="1.0" encoding="x-nope"?><xml><Encrypt>{encrypt}</Encrypt></xml>'
    query, body = wecom_post(tenant.keys, tenant.corp_id, DELETE, envelope=envelope)
    response = post_wecom(client, query, body)
    assert response.status_code == 400
    assert response.json() == {"error": "malformed"}


async def test_a_client_that_disconnects_mid_body_is_no_error() -> None:
    tenant = Tenant()
    publisher = MemoryEventPublisher()
    app = create_app(tenant.settings(), publisher=publisher)
    query, _ = wecom_post(tenant.keys, tenant.corp_id, DELETE)
    messages = iter([{"type": "http.request", "body": b"<xml>", "more_body": True}])
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = wecom_scope(query, [(b"content-length", b"1000")])
    with capture_logs() as logs:
        await app(scope, receive, send)
    assert sent[0]["status"] < 500
    assert [e for e in logs if e["log_level"] == "error"] == []
    assert 'outcome="disconnected"' in generate(app)
    assert publisher.published == []


def wecom_scope(query: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """An ASGI scope for a WeCom POST, for the tests that drive the app's receive channel."""
    return {
        "type": "http",
        "method": "POST",
        "path": "/callbacks/wecom/acme",
        "raw_path": b"/callbacks/wecom/acme",
        "query_string": query.encode(),
        "headers": headers,
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
    }


def generate(app: Any) -> str:
    from prometheus_client import generate_latest

    return generate_latest(app.state.metrics.registry).decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Department", "²"),
        ("Department", "١٢"),  # Arabic-Indic digits
        ("Department", "１２"),  # full-width
        ("Department", "9" * 20),  # above 64 bits
        ("MainDepartment", "1" * 400),
        ("Gender", "12"),
    ],
)
def test_only_ascii_digits_within_range_are_numbers(field: str, value: str) -> None:
    tenant = Tenant()
    client, publisher = tenant.client()
    plaintext = contact_xml("update_user", UserID="zhangsan", **{field: value})
    response = post_wecom(client, *wecom_post(tenant.keys, tenant.corp_id, plaintext))
    assert response.status_code == 400
    assert publisher.published == []


@pytest.mark.parametrize("timestamp", ["7" * 400, "١٧٦٧٢٢٥٦٠٠", "1767225600²"])
def test_a_signed_timestamp_that_is_no_number_is_a_bad_request(timestamp: str) -> None:
    tenant = Tenant()
    client, publisher = tenant.client()
    signed = wecom_post(tenant.keys, tenant.corp_id, DELETE, timestamp=timestamp)
    query, body = signed[0].replace(timestamp, quote(timestamp)), signed[1]
    response = post_wecom(client, query, body)
    assert (response.status_code, response.json()) == (400, {"error": "bad_request"})
    assert publisher.published == []


@pytest.mark.parametrize("department", ["١٢", "99999999999999999999", True])
def test_a_dingtalk_department_id_is_ascii_digits_in_64_bits(department: Any) -> None:
    tenant = Tenant()
    client, publisher = tenant.client()
    fields = {"EventType": "org_dept_modify", "DeptId": [department], "TimeStamp": "1767225600000"}
    response = post_dingtalk(client, *dingtalk_post(tenant.keys, tenant.app_key, fields))
    assert response.status_code == 400
    assert publisher.published == []


def test_a_callback_listing_4000_ids_gives_4000_small_events() -> None:
    """Fan-out stays linear: each event carries its own id, not the whole plaintext."""
    tenant = Tenant()
    client, publisher = tenant.client()
    ids = [f"user{i:05d}" for i in range(4000)]
    fields = {"EventType": "user_add_org", "UserId": ids, "TimeStamp": "1767225600000"}
    query, body = dingtalk_post(tenant.keys, tenant.app_key, fields)
    assert len(body) > 32_000
    response = post_dingtalk(client, query, body)
    assert response.status_code == 200
    assert [e.entity_id for e in publisher.published] == ids
    sizes = [len(encode(e)) for e in publisher.published]
    assert max(sizes) < 1024
    assert orjson.loads(publisher.published[7].raw)["UserId"] == ["user00007"]


def test_rotation_accepts_the_old_and_new_keys_then_only_the_new() -> None:
    old, new = Keys(), Keys()
    during = Tenant(keys=new, previous=old)
    client, publisher = during.client()
    for keys in (old, new):
        assert post_wecom(client, *wecom_post(keys, during.corp_id, DELETE)).status_code == 200
        fields = {"EventType": "user_leave_org", "UserId": [f"u-{keys.token}"]}
        reply = post_dingtalk(client, *dingtalk_post(keys, during.app_key, fields))
        assert reply.status_code == 200
        # DingTalk's `success` is encrypted with the key the request came with.
        plain = crypto.decrypt(keys.aes_key, reply.json()["encrypt"], during.app_key)
        assert plain == b"success"
    assert len(publisher.published) == 3  # the second WeCom delete is the same event
    after = Tenant(keys=new)
    client, publisher = after.client()
    assert post_wecom(client, *wecom_post(old, after.corp_id, DELETE)).status_code == 403
    assert post_wecom(client, *wecom_post(new, after.corp_id, DELETE)).status_code == 200
    assert len(publisher.published) == 1


def test_a_body_slower_than_the_deadline_is_answered_408() -> None:
    """In process: the body stream never ends; the deadline answers and closes."""
    tenant = Tenant()
    app = create_app(tenant.settings(body_timeout_seconds=0.2), publisher=MemoryEventPublisher())
    query, _ = wecom_post(tenant.keys, tenant.corp_id, DELETE)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = wecom_scope(query, [])
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))
    start = sent[0]
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
