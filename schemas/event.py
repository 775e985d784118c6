"""The normalized contact event (`orgstream.contact-event`, version 1) and its wire codec.

One event per changed entity. `contact-event.v1.schema.json` beside this module is the contract;
`tests/schemas/test_event.py` checks that this model and that file agree.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from schemas.topics import partition_key
from schemas.types import CHANGES, ENTITIES, VENDORS, Change, Entity, Vendor

SCHEMA_NAME = "orgstream.contact-event"
SCHEMA_VERSION = 1

# Attribute values are whatever the callback carried, normalized: JSON scalars and lists.
# dict: a user's vendor custom fields, which only directory records carry
AttributeValue = str | int | bool | list[str] | list[int] | dict[str, str] | None


class SchemaError(ValueError):
    """A record that is not a valid contact event of a known version (dead-letter material)."""


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """One change to one user or department, as the vendor reported it."""

    event_id: str
    tenant: str
    vendor: Vendor
    entity: Entity
    entity_id: str
    change: Change
    occurred_at: str
    received_at: str
    raw: str
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> bytes:
        return partition_key(self.tenant, self.entity, self.entity_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "tenant": self.tenant,
            "vendor": self.vendor,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "change": self.change,
            "attributes": dict(self.attributes),
            "occurred_at": self.occurred_at,
            "received_at": self.received_at,
            "raw": self.raw,
        }


def make_event_id(vendor: Vendor, tenant: str, plaintext: bytes, index: int) -> str:
    """Same decrypted callback (a vendor retry) -> same id, so duplicates dedupe downstream.

    `index` tells apart the events one callback fans out into (one per changed entity).
    """
    digest = hashlib.sha256(b"%s\x00%s\x00%d\x00" % (vendor.encode(), tenant.encode(), index))
    digest.update(plaintext)
    return digest.hexdigest()[:32]


def utc_iso(timestamp: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with a `Z`, the form every timestamp in an event takes."""
    whole, millis = divmod(round(timestamp * 1000), 1000)
    return f"{_utc_second(whole)}.{millis:03d}Z"


@functools.lru_cache(maxsize=64)
def _utc_second(second: int) -> str:
    """`2026-11-30T09:48:44`: made once per second, not once per event."""
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def encode(event: ContactEvent) -> bytes:
    return orjson.dumps(event.to_dict())


def decode(payload: bytes) -> ContactEvent:
    """Parse and check one record value; anything off raises `SchemaError`."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaError("event must be a JSON object")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(f"unsupported schema_version {data.get('schema_version')!r}")
    _require_choice(data, "vendor", VENDORS)
    _require_choice(data, "entity", ENTITIES)
    _require_choice(data, "change", CHANGES)
    strings = ("event_id", "tenant", "entity_id", "occurred_at", "received_at", "raw")
    for name in strings:
        if not isinstance(data.get(name), str) or (name != "raw" and not data[name]):
            raise SchemaError(f"{name} must be a non-empty string")
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict):
        raise SchemaError("attributes must be an object")
    return ContactEvent(
        event_id=data["event_id"],
        tenant=data["tenant"],
        vendor=cast(Vendor, data["vendor"]),
        entity=cast(Entity, data["entity"]),
        entity_id=data["entity_id"],
        change=cast(Change, data["change"]),
        occurred_at=data["occurred_at"],
        received_at=data["received_at"],
        raw=data["raw"],
        attributes=attributes,
    )


def _require_choice(data: dict[str, Any], name: str, choices: tuple[str, ...]) -> None:
    if data.get(name) not in choices:
        raise SchemaError(f"{name} must be one of {', '.join(choices)}; got {data.get(name)!r}")
