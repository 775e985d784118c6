"""Fuzzing the Feishu route of the real app (Hypothesis): events with any shape, signed and
encrypted with the tenant's key or not, and bodies that are no event at all.

For every input: never a 5xx; a refusal is always the one public answer; nothing is published
unless the request was signed with the tenant's key and carried its verification token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from receiver import create_app
from receiver.publisher import MemoryEventPublisher
from schemas.vendors import feishu, feishu_crypto
from tests.vectors import Clock, feishu_settings, load_vectors

CONFIG: Final = load_vectors("feishu")["config"]
EXAMPLES: Final = int(os.environ.get("ORGSTREAM_FUZZ_EXAMPLES", "3000")) // 5
NOW: Final = 1767225600
PUBLISHER = MemoryEventPublisher()
CLIENT = TestClient(
    create_app(feishu_settings(CONFIG), publisher=PUBLISHER, clock=Clock(float(NOW))),
    raise_server_exceptions=False,
)
AES_KEY: Final = feishu_crypto.aes_key_of(CONFIG["encrypt_key"])
PLAIN_CLIENT = TestClient(  # a tenant without an encrypt key: the token is all there is
    create_app(
        feishu_settings({**CONFIG, "encrypt_key": None}), publisher=PUBLISHER, clock=Clock(NOW)
    ),
    raise_server_exceptions=False,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.one_of(st.text(max_size=140), json_values)
entity = st.fixed_dictionaries(
    {},
    optional={
        "user_id": ids,
        "open_id": ids,
        "department_id": ids,
        "name": json_values,
        "parent_department_id": json_values,
    },
)
contact_event_types = st.sampled_from(
    [*feishu.CONTACT_EVENT_TYPES, *feishu.IGNORED_EVENT_TYPES, "im.message.receive_v1"]
)
event_types = contact_event_types | st.text(max_size=30)
header = st.fixed_dictionaries(
    {
        "event_id": st.text(max_size=40) | json_values,
        "token": st.sampled_from([CONFIG["verification_token"], "wrong"]) | json_values,
        "event_type": event_types | json_values,
    },
    optional={
        "create_time": st.text(alphabet="0123456789", max_size=20) | json_values,
        "app_id": st.sampled_from([CONFIG["app_id"], "cli_other"]),
        "tenant_key": st.sampled_from([CONFIG["tenant_key"], "other"]),
    },
)
scope_side = (
    st.fixed_dictionaries(
        {},
        optional={
            "users": st.lists(entity, max_size=3),
            "departments": st.lists(entity, max_size=3),
        },
    )
    | json_values
)
event = st.fixed_dictionaries(
    {},
    optional={
        "object": entity | json_values,
        "old_object": entity | json_values,
        "added": scope_side,
        "removed": scope_side,
    },
)
good_ids = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "Pd"]), min_size=1, max_size=20
)
good_entity = st.fixed_dictionaries(
    {"user_id": good_ids, "department_id": good_ids}, optional={"name": json_values}
)
well_formed = st.fixed_dictionaries(
    {
        "schema": st.just("2.0"),
        "header": st.fixed_dictionaries(
            {
                "event_id": good_ids,
                "token": st.just(CONFIG["verification_token"]),
                "event_type": contact_event_types,
                "app_id": st.just(CONFIG["app_id"]),
            },
            optional={"create_time": st.text(alphabet="0123456789", max_size=20)},
        ),
        "event": st.fixed_dictionaries(
            {"object": good_entity},
            optional={
                "old_object": good_entity | json_values,
                "added": st.fixed_dictionaries({"users": st.lists(good_entity, max_size=3)}),
                "removed": st.fixed_dictionaries(
                    {"departments": st.lists(good_entity, max_size=3)}
                ),
            },
        ),
    }
)
plaintexts = st.one_of(
    well_formed,
    well_formed,
    st.fixed_dictionaries(
        {"schema": st.sampled_from(["2.0", "1.0"]) | json_values, "header": header | json_values},
        optional={"event": event | json_values},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("url_verification"),
            "token": st.sampled_from([CONFIG["verification_token"], "wrong"]),
            "challenge": json_values,
        }
    ),
    json_values,
).map(orjson.dumps) | st.binary(max_size=64)


@dataclass(frozen=True)
class Request:
    body: bytes
    headers: dict[bytes, bytes]
    authentic: bool  # signed with the tenant's key, in time, encrypted for it, the right token


def right_token(plaintext: bytes) -> bool:
    try:
        fields = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        return False
    header = fields.get("header") if isinstance(fields, dict) else None
    return isinstance(header, dict) and header.get("token") == CONFIG["verification_token"]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    plaintext = draw(plaintexts)
    key = draw(st.sampled_from([AES_KEY, AES_KEY, feishu_crypto.aes_key_of("another key")]))
    encrypted = orjson.dumps({"encrypt": feishu_crypto.encrypt(key, plaintext)})
    body = draw(
        st.sampled_from([encrypted, encrypted, plaintext, encrypted[: len(encrypted) // 2]])
    )
    headers = {b"Content-Type": b"application/json"}
    in_time = signed = draw(st.sampled_from([True, True, False]))
    if signed:
        skew = draw(st.integers(-400, 400))
        in_time = abs(skew) <= 300
        timestamp = str(NOW + skew)
        sig = feishu_crypto.signature(timestamp, "nonce", CONFIG["encrypt_key"], body).encode()
        chosen = draw(st.sampled_from([sig, sig, sig.upper(), b"0" * 64, b"\xe9"]))
        signed = chosen.lower() == sig
        headers |= {
            b"X-Lark-Request-Timestamp": timestamp.encode(),
            b"X-Lark-Request-Nonce": b"nonce",
            b"X-Lark-Signature": chosen,
        }
    authentic = signed and in_time and body == encrypted and key == AES_KEY
    return Request(body, headers, authentic and right_token(plaintext))


def answered(client: TestClient, request: Request) -> bool:
    """Posts it; whether anything was published. Never a 5xx, never a second kind of refusal,
    never the token in what is published."""
    PUBLISHER.published.clear()
    response = client.post("/callbacks/feishu/gamma", content=request.body, headers=request.headers)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert (response.status_code, response.content) == (400, b'{"error":"rejected"}')
        assert PUBLISHER.published == []
    for published in PUBLISHER.published:
        assert CONFIG["verification_token"] not in published.raw
    return bool(PUBLISHER.published)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(requests())
def test_no_feishu_input_causes_a_5xx_an_unauthentic_publish_or_a_second_answer(
    request: Request,
) -> None:
    if answered(CLIENT, request):
        assert request.authentic


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
@given(plaintexts)
def test_without_an_encrypt_key_only_the_token_lets_an_event_through(plaintext: bytes) -> None:
    request = Request(plaintext, {b"Content-Type": b"application/json"}, right_token(plaintext))
    if answered(PLAIN_CLIENT, request):
        assert request.authentic
