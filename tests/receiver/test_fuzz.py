"""Fuzzing the real app (Hypothesis): mutated envelopes, ciphertexts, query strings, encodings
and plaintexts, with an in-memory publisher.

For every input: never a 5xx; nothing published unless the request carried a valid signature
and a valid ciphertext for the tenant; and every decryption failure looks the same from
outside (status, body, headers, and which counter moved). The totals are printed at the end
of the run (tests/receiver/conftest.py).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from receiver import create_app
from receiver.publisher import MemoryEventPublisher
from schemas.vendors import crypto
from schemas.vendors.errors import CallbackError
from tests.receiver.wire import Keys, Tenant

TOTALS: Final[Counter[str]] = Counter()
# About 25 s on 2 cores (1,500 of them in about 12 s); ORGSTREAM_FUZZ_EXAMPLES runs more.
EXAMPLES: Final = int(os.environ.get("ORGSTREAM_FUZZ_EXAMPLES", "3000"))

TENANT = Tenant()
OTHER_KEYS = Keys()
PUBLISHER = MemoryEventPublisher()
APP = create_app(TENANT.settings(), publisher=PUBLISHER)
CLIENT = TestClient(APP, raise_server_exceptions=False)
DECRYPTION_FAILURES: dict[str, set[tuple[Any, ...]]] = {"wecom": set(), "dingtalk": set()}

Expect = Literal["may_publish", "decryption_failure", "no_publish"]


@dataclass(frozen=True)
class Case:
    vendor: str
    method: str
    query: str
    body: bytes
    content_type: str
    expect: Expect


# ---- plaintexts: what a vendor might send, and what it never would ----------------------

numbers = st.one_of(
    st.integers(0, 10**6).map(str),
    st.sampled_from(["²", "١٢", "１２", "-1", "1e3", "0x10", "", " 7", "9" * 25, "7" * 400]),
)
texts = st.text(max_size=40)
WECOM_CHANGES = st.sampled_from(
    ["create_user", "update_user", "delete_user", "create_party", "update_party",
     "delete_party", "update_tag", "nope"]
)  # fmt: skip
WECOM_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "UserID",
            "NewUserID",
            "Name",
            "Department",
            "MainDepartment",
            "Gender",
            "Status",
            "Id",
            "ParentId",
            "Order",
            "CreateTime",
            "Mobile",
            "Position",
        ]
    ),
    st.one_of(numbers, texts),
    max_size=6,
)


@st.composite
def wecom_plaintexts(draw: st.DrawFn) -> bytes:
    fields = draw(WECOM_FIELDS)
    inner = "".join(f"<{k}><![CDATA[{v.replace(']]>', '')}]]></{k}>" for k, v in fields.items())
    declaration = draw(
        st.sampled_from(["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="x-nope"?>'])
    )
    event = draw(st.sampled_from(["change_contact", "subscribe", ""]))
    xml = (
        f"{declaration}<xml><Event><![CDATA[{event}]]></Event>"
        f"<ChangeType>{draw(WECOM_CHANGES)}</ChangeType>{inner}</xml>"
    )
    if draw(st.booleans()):
        return xml.encode()
    return draw(st.one_of(st.binary(max_size=80), texts.map(str.encode)))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), texts),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def dingtalk_plaintexts(draw: st.DrawFn) -> bytes:
    fields: dict[str, Any] = {
        "EventType": draw(
            st.sampled_from(
                [
                    "user_add_org",
                    "user_leave_org",
                    "org_dept_create",
                    "org_dept_remove",
                    "check_url",
                    "label_user_change",
                    "nope",
                ]
            )
        )
    }
    for name in draw(st.sets(st.sampled_from(["UserId", "DeptId", "userId", "TimeStamp"]))):
        fields[name] = draw(st.one_of(st.lists(json_values, max_size=5), json_values))
    if draw(st.booleans()):
        return json.dumps(fields).encode()  # the stdlib writes 70-bit integers and NaN too
    return draw(st.binary(max_size=80))


# ---- requests: signed right or wrong, ciphertexts kept or mutated ----------------------


def mutate(draw: st.DrawFn, encrypt: str) -> str:
    data = bytearray(base64.b64decode(encrypt))
    how = draw(st.sampled_from(["flip", "truncate", "append", "prefix_block"]))
    if how == "flip":
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= draw(st.integers(1, 255))
    elif how == "truncate":
        data = data[: draw(st.integers(1, len(data) - 1))]  # empty is no ciphertext at all
    elif how == "append":
        data += draw(st.binary(min_size=1, max_size=48))
    else:
        data = bytearray(draw(st.binary(min_size=16, max_size=16))) + data[16:]
    return base64.b64encode(bytes(data)).decode()


@st.composite
def cases(draw: st.DrawFn) -> Case:
    vendor = draw(st.sampled_from(["wecom", "dingtalk"]))
    plaintext = draw(wecom_plaintexts() if vendor == "wecom" else dingtalk_plaintexts())
    receive_id = TENANT.corp_id if vendor == "wecom" else TENANT.app_key
    kind = draw(
        st.sampled_from(["valid", "mutated", "other_key", "foreign_id", "bad_signature", "garbage"])
    )
    keys = TENANT.keys
    encrypt = crypto.encrypt(keys.aes_key, plaintext, receive_id)
    expect: Expect = "may_publish"
    if kind == "mutated":
        encrypt = mutate(draw, encrypt)
        expect = "may_publish" if still_decrypts(encrypt, receive_id) else "decryption_failure"
    elif kind == "other_key":  # the right token, another AES key
        encrypt = crypto.encrypt(OTHER_KEYS.aes_key, plaintext, receive_id)
        expect = "decryption_failure"
    elif kind == "foreign_id":
        encrypt, expect = (
            crypto.encrypt(keys.aes_key, plaintext, "someone-else"),
            "decryption_failure",
        )
    timestamp = str(int(time.time())) if vendor == "wecom" else str(int(time.time() * 1000))
    nonce = secrets.token_hex(4)
    signature = crypto.signature(keys.token, timestamp, nonce, encrypt)
    if kind == "bad_signature":
        signature = crypto.signature(OTHER_KEYS.token, timestamp, nonce, encrypt)
        expect = "no_publish"
    query = f"msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
    if vendor == "wecom":
        body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    else:
        body = orjson.dumps({"encrypt": encrypt})
    if kind == "garbage":
        expect = "no_publish"
        query = draw(st.one_of(st.just(query), st.text(max_size=60).map(_query_safe)))
        body = draw(st.one_of(st.binary(max_size=200), st.just(body[: len(body) // 2])))
    method = "POST"
    if vendor == "wecom" and draw(st.integers(0, 9)) == 0:  # the handshake, with anything
        method = "GET"
        query += "&echostr=" + encrypt.replace("+", "%2B").replace("/", "%2F")
        expect = "no_publish" if expect == "may_publish" else expect
    content_type = draw(st.sampled_from(["text/xml", "application/json", "", "x/y; charset=x"]))
    return Case(vendor, method, query, body, content_type, expect)


def still_decrypts(encrypt: str, receive_id: str) -> bool:
    """CBC without a MAC is malleable: a changed first block (the random prefix) only flips
    bits in the first 12 bytes of the message, so some mutations still decrypt, to another
    plaintext. Such a request carries a valid ciphertext for the tenant; the others fail."""
    try:
        crypto.decrypt(TENANT.keys.aes_key, encrypt, receive_id)
    except CallbackError:
        return False
    return True


def _query_safe(text: str) -> str:
    """What a client can put on the wire: anything, percent-encoded, '=' and '&' kept."""
    return quote(text, safe="=&%")


def metrics() -> Counter[str]:
    counted: Counter[str] = Counter()
    for line in generate_latest(APP.state.metrics.registry).decode().splitlines():
        if line.startswith("orgstream_callbacks_total{"):
            name, value = line.rsplit(" ", 1)
            counted[name] = int(float(value))
    return counted


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_no_input_causes_a_5xx_a_forged_publish_or_an_oracle(case: Case) -> None:
    before, published = metrics(), len(PUBLISHER.published)
    headers = {"content-type": case.content_type} if case.content_type else {}
    url = f"/callbacks/{case.vendor}/{'acme' if case.vendor == 'wecom' else 'beta'}?{case.query}"
    response = CLIENT.request(case.method, url, content=case.body, headers=headers)
    TOTALS["inputs"] += 1
    TOTALS[f"status {response.status_code}"] += 1
    TOTALS[f"expected {case.expect}"] += 1
    assert response.status_code < 500, (case, response.text)
    if case.expect != "may_publish":
        assert len(PUBLISHER.published) == published, case
    if case.expect == "decryption_failure":
        moved = metrics() - before
        served = {k: v for k, v in response.headers.items() if k.lower() != "date"}
        answer = (response.status_code, response.content, tuple(sorted(served.items())))
        DECRYPTION_FAILURES[case.vendor].add((*answer, tuple(sorted(moved.items()))))
        assert len(DECRYPTION_FAILURES[case.vendor]) == 1, DECRYPTION_FAILURES[case.vendor]
