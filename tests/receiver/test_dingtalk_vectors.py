"""Every DingTalk vector from the vendor SDK, through the real HTTP app: the reply decrypts and
verifies with the tenant's keys, events come out one per id, negatives get a 4xx."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from receiver import create_app
from receiver.publisher import MemoryEventPublisher
from schemas.config import decode_aes_key
from schemas.vendors import crypto
from tests.vectors import Clock, dingtalk_settings, load_vectors, request_body, vector_app

DINGTALK = load_vectors("dingtalk")
POSITIVES = {v["id"]: v for v in DINGTALK["positive"]}

# The vectors' `normalized.op` -> (entity, change) we publish; None: acknowledged, not published.
EXPECTED: dict[str, tuple[str, str] | None] = {
    "user.upsert": ("user", ""),  # created or updated, by event type
    "user.activate": ("user", "updated"),
    "user.delete": ("user", "deleted"),
    "group.upsert": ("department", ""),
    "group.delete": ("department", "deleted"),
    "user.role": None,
    "role.members": None,
    "role.upsert": None,
    "none": None,
}
CHANGE_OF_EVENT = {
    "user_add_org": "created",
    "user_modify_org": "updated",
    "org_dept_create": "created",
    "org_dept_modify": "updated",
}


def send(client: TestClient, vector: dict[str, Any], tenant: str = "beta") -> Any:
    request = vector["request"]
    url = f"/callbacks/dingtalk/{tenant}?{request['query_string']}"
    headers = {k: v for k, v in request.get("headers", {}).items() if k.lower() != "content-length"}
    return client.post(url, content=request_body(vector), headers=headers)


def app_for(
    vector: dict[str, Any], clock: Clock | None = None
) -> tuple[TestClient, MemoryEventPublisher]:
    return vector_app(dingtalk_settings(vector["config"]), vector, clock)


def assert_success_reply(response: Any, config: dict[str, Any]) -> None:
    """The encrypted `success` JSON (docs/vendors.md §2.3): signed with the token,
    encrypted for the owner key."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    reply = response.json()
    assert set(reply) == {"msg_signature", "timeStamp", "nonce", "encrypt"}
    signed = (config["token"], reply["timeStamp"], reply["nonce"], reply["encrypt"])
    assert reply["msg_signature"] == crypto.signature(*signed)
    key = decode_aes_key(config["aes_key"])
    assert crypto.decrypt(key, reply["encrypt"], config["owner_key"]) == b"success"


@pytest.mark.parametrize("vector", DINGTALK["positive"], ids=lambda v: v["id"])
def test_positive_vector_gets_the_encrypted_success_and_its_events(vector: dict[str, Any]) -> None:
    clock = Clock(float(vector["receiver_now"]))
    client, publisher = app_for(vector, clock)
    if original := vector.get("retry_of"):
        first = POSITIVES[original]
        clock.now = float(first["receiver_now"])
        assert_success_reply(send(client, first), first["config"])
        assert publisher.published
        publisher.published.clear()
        clock.now = float(vector["receiver_now"])
    response = send(client, vector)
    assert_success_reply(response, vector["config"])
    wanted = EXPECTED[vector["normalized"]["op"]]
    if wanted is None or vector.get("expected_publish") is False:
        assert publisher.published == []
        return
    entity, change = wanted
    normalized = vector["normalized"]
    ids = [str(i) for i in normalized.get("user_ids", normalized.get("dept_ids", []))]
    assert [e.entity_id for e in publisher.published] == ids
    for event in publisher.published:
        assert (event.entity, event.tenant, event.vendor) == (entity, "beta", "dingtalk")
        assert event.change == (change or CHANGE_OF_EVENT[vector["event_type"]])
        assert raw_fields(event.raw) == own_part(vector["plaintext"], event.entity_id, len(ids))
    assert len({e.event_id for e in publisher.published}) == len(ids)


def raw_fields(raw: str) -> dict[str, Any]:
    fields: dict[str, Any] = orjson.loads(raw)
    return fields


def own_part(plaintext: str, entity_id: str, listed: int) -> dict[str, Any]:
    """What an event keeps of its callback: all of it when it lists one id, else the
    callback's fields with the id list narrowed to the event's own id."""
    fields = raw_fields(plaintext)
    if listed == 1:
        return fields
    for name in ("UserId", "userId", "DeptId", "deptId"):
        if name in fields:
            fields[name] = [type(fields[name][0])(entity_id)]
    return fields


@pytest.mark.parametrize("vector", DINGTALK["negative"], ids=lambda v: v["id"])
def test_negative_vector_is_rejected_with_its_reason(vector: dict[str, Any]) -> None:
    client, publisher = app_for(vector)
    with capture_logs() as logs:
        response = send(client, vector)
    assert 400 <= response.status_code < 500
    rejections = [entry for entry in logs if entry["event"] == "callback_rejected"]
    assert [entry["reason"] for entry in rejections] == [vector["expected"]["reason"]]
    assert publisher.published == []


def test_dingtalks_own_check_url_sample_is_answered() -> None:
    """The sample from DingTalk's crypto repository (legacy mode, owner key = corp id)."""
    [sample] = [v for v in DINGTALK["vendor_published_vectors"] if "request" in v]
    config = {**sample["config"], "owner_key_kind": "corpId"}
    timestamp = int(sample["request"]["query"]["timestamp"])
    client, publisher = app_for({"config": config, "receiver_now": 0}, Clock(timestamp / 1000 + 1))
    query = "&".join(f"{k}={v}" for k, v in sample["request"]["query"].items())
    response = client.post(f"/callbacks/dingtalk/beta?{query}", content=sample["request"]["body"])
    assert_success_reply(response, config)
    assert publisher.published == []


def test_dingtalks_published_success_reply_decrypts_with_our_crypto() -> None:
    [sample] = [v for v in DINGTALK["vendor_published_vectors"] if "reply" in v]
    config, reply = sample["config"], sample["reply"]
    signed = crypto.signature(config["token"], reply["timeStamp"], reply["nonce"], reply["encrypt"])
    assert signed == reply["msg_signature"]
    key = decode_aes_key(config["aes_key"])
    assert crypto.decrypt(key, reply["encrypt"], config["owner_key"]) == b"success"


def test_seconds_timestamps_and_either_signature_name_are_accepted() -> None:
    """DingTalk's FAQ sample uses seconds and `signature`; the SDK uses ms and `msg_signature`."""
    vector = POSITIVES["dingtalk-public-user_add_org_v2"]
    config = vector["config"]
    key = decode_aes_key(config["aes_key"])
    plaintext = vector["plaintext"].encode()
    spellings = (("timeStamp", "signature"), ("timestamp", "msg_signature"))
    for timestamp_name, signature_name in spellings:
        client, publisher = app_for(vector)
        timestamp = str(vector["receiver_now"] - 1)  # seconds
        encrypt = crypto.encrypt(key, plaintext, config["owner_key"])
        signature = crypto.signature(config["token"], timestamp, "n0nce", encrypt)
        query = f"{signature_name}={signature}&{timestamp_name}={timestamp}&nonce=n0nce"
        body = orjson.dumps({"encrypt": encrypt})
        response = client.post(f"/callbacks/dingtalk/beta?{query}", content=body)
        assert_success_reply(response, config)
        assert [e.entity_id for e in publisher.published] == ["0266571023456789"]


def test_chinese_text_round_trips_with_the_length_counted_in_bytes() -> None:
    """`msg_len` counts UTF-8 bytes: a plaintext with Chinese (and a 4-byte character) opens."""
    vector = POSITIVES["dingtalk-public-user_modify_org"]
    config = vector["config"]
    key = decode_aes_key(config["aes_key"])
    plaintext = orjson.dumps(
        {
            "EventType": "user_modify_org",
            "TimeStamp": "1767225600002",
            "CorpId": config["corp_id"],
            "UserId": ["张伟", "𠮷强"],
            "OptStaffId": "管理员",
        }
    )
    assert len(plaintext) > len(plaintext.decode())
    client, publisher = app_for(vector)
    timestamp = str(vector["receiver_now"] * 1000)
    encrypt = crypto.encrypt(key, plaintext, config["owner_key"])
    signature = crypto.signature(config["token"], timestamp, "abc", encrypt)
    response = client.post(
        f"/callbacks/dingtalk/beta?signature={signature}&timestamp={timestamp}&nonce=abc",
        content=orjson.dumps({"encrypt": encrypt}),
    )
    assert_success_reply(response, config)
    assert [e.entity_id for e in publisher.published] == ["张伟", "𠮷强"]
    assert raw_fields(publisher.published[0].raw) == own_part(plaintext.decode(), "张伟", 2)


def test_a_wecom_tenant_is_not_reachable_on_the_dingtalk_route() -> None:
    vector = POSITIVES["dingtalk-public-user_add_org"]
    client, publisher = app_for(vector)
    response = send(client, vector, tenant="nobody")
    assert response.status_code == 404
    assert publisher.published == []


def test_broker_without_ack_answers_503_not_success() -> None:
    """DingTalk must not get `success` before the broker has the events: 503, it retries."""
    vector = POSITIVES["dingtalk-public-org_dept_remove"]
    client, publisher = app_for(vector)
    publisher.fail = True
    response = send(client, vector)
    assert response.status_code == 503
    assert "encrypt" not in response.json()
    publisher.fail = False
    assert_success_reply(send(client, vector), vector["config"])
    assert [e.entity_id for e in publisher.published] == ["432825099"]


class StalledPublisher(MemoryEventPublisher):
    """A broker that never acks (it would, much later than DingTalk waits)."""

    async def publish(self, events: Any, traceparent: str) -> None:
        await asyncio.sleep(30)


def test_a_broker_slower_than_dingtalks_reply_window_gets_503() -> None:
    """DingTalk stops waiting after 1.5 s: past the publish deadline the answer is 503 (the
    vendor redelivers), never a late `success`."""
    vector = POSITIVES["dingtalk-public-org_dept_remove"]
    publisher = StalledPublisher()
    settings = dingtalk_settings(vector["config"])
    app = create_app(settings, publisher=publisher, clock=Clock(float(vector["receiver_now"])))
    response = send(TestClient(app), vector)
    assert response.status_code == 503
    assert response.json() == {"error": "broker_unavailable"}
