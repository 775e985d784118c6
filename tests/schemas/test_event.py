"""The event model and the JSON Schema file agree; the codec round-trips and refuses junk."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, get_args

import jsonschema
import orjson
import pytest

import schemas
from schemas import ContactEvent, SchemaError, decode, encode, make_event_id
from schemas.types import Change, Entity, Vendor

SCHEMA = json.loads(
    (Path(schemas.__file__).parent / "contact-event.v1.schema.json").read_text(encoding="utf-8")
)


def sample(**changes: Any) -> ContactEvent:
    base = ContactEvent(
        event_id="e1",
        tenant="acme",
        vendor="wecom",
        entity="user",
        entity_id="zhangwei",
        change="created",
        occurred_at="2026-01-01T00:00:01.000Z",
        received_at="2026-01-01T00:00:02.000Z",
        raw="<xml/>",
        attributes={"name": "张伟", "departments": [1, 2], "status": 1},
    )
    return dataclasses.replace(base, **changes)


def test_model_fields_are_the_schema_properties() -> None:
    fields = {f.name for f in dataclasses.fields(ContactEvent)}
    assert fields == set(SCHEMA["properties"]) == set(SCHEMA["required"])


def test_model_enums_are_the_schema_enums() -> None:
    props = SCHEMA["properties"]
    assert set(props["vendor"]["enum"]) == set(get_args(Vendor))
    assert set(props["entity"]["enum"]) == set(get_args(Entity))
    assert set(props["change"]["enum"]) == set(get_args(Change))
    assert props["schema_version"]["const"] == schemas.SCHEMA_VERSION


def test_encoded_event_validates_against_the_schema_file() -> None:
    jsonschema.validate(orjson.loads(encode(sample())), SCHEMA)


def test_round_trip() -> None:
    event = sample()
    assert decode(encode(event)) == event
    assert event.key == b"acme:user:zhangwei"


def test_schema_rejects_what_decode_rejects() -> None:
    bad = orjson.loads(encode(sample()))
    bad["change"] = "exploded"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    with pytest.raises(SchemaError, match="change"):
        decode(orjson.dumps(bad))


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"schema_version": 2}'])
def test_junk_is_a_schema_error(payload: bytes) -> None:
    with pytest.raises(SchemaError):
        decode(payload)


def test_event_id_is_deterministic_per_callback() -> None:
    one = make_event_id("wecom", "acme", b"<xml>a</xml>", 0)
    assert one == make_event_id("wecom", "acme", b"<xml>a</xml>", 0)
    assert one != make_event_id("wecom", "acme", b"<xml>b</xml>", 0)
    assert one != make_event_id("wecom", "beta", b"<xml>a</xml>", 0)
    assert one != make_event_id("wecom", "acme", b"<xml>a</xml>", 1)


def test_public_surface() -> None:
    assert set(schemas.__all__) == {
        "SCHEMA_NAME",
        "SCHEMA_VERSION",
        "ContactEvent",
        "SchemaError",
        "decode",
        "encode",
        "make_event_id",
        "partition_key",
        "utc_iso",
    }
