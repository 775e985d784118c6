"""Feishu event subscription v2.0 callbacks (docs/vendors.md §3): request -> verified
plaintext -> events.

Pure: no I/O. With an encrypt key the body is `{"encrypt": …}` and the `X-Lark-*` headers sign
it; the signature, then the timestamp window, are checked before anything is decrypted, and the
verification token after. Only a URL verification may come unsigned (Feishu sends it before
the app's signing is set up): it is decrypted, and anything in it but a challenge with the
right token is refused as unsigned. Without an encrypt key the body is the plaintext and the
verification token is the only authenticator.

Every refusal gets one public answer (`PUBLIC_REFUSAL`), whatever failed: the vendor's SDK
tells a bad padding from a bad token from a bad signature, which makes a padding oracle of the
callback URL. The reason is in the operator's log only.

Events carry ids: the worker reads the rest from the API, as for DingTalk. Contact v3 events
give one event each; a change of the app's visible range (`contact.scope.updated_v3`) gives one
per user and department that entered (created) or left it (deleted; the resolver confirms with
the vendor before anything is deprovisioned).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from schemas.config import TenantSettings
from schemas.config.model import FeishuApp
from schemas.event import AttributeValue, ContactEvent, make_event_id, utc_iso
from schemas.types import Change, Entity
from schemas.vendors import feishu_crypto
from schemas.vendors.callback import Opened, check_window, epoch_seconds, json_object
from schemas.vendors.errors import (
    BadRequest,
    BadToken,
    BodyTimeout,
    BodyTooLarge,
    CallbackError,
    MalformedEnvelope,
    MalformedPlaintext,
    SignatureMismatch,
)
from schemas.vendors.numbers import is_timestamp

HANDSHAKE: Final = "url_verification"
# Feishu waits 3 s for an answer (docs/vendors.md §3.3): the broker gets 2 s.
PUBLISH_DEADLINE_SECONDS: Final = 2.0
# What every refused request is answered, and counted as.
PUBLIC_REFUSAL: Final = (400, "rejected")
SUCCESS: Final = b'{"msg":"success"}'
TIMESTAMP_HEADER: Final = "x-lark-request-timestamp"
NONCE_HEADER: Final = "x-lark-request-nonce"
SIGNATURE_HEADER: Final = "x-lark-signature"
_MAX_CHALLENGE_CHARS: Final = 256
_MAX_ID_CHARS: Final = 128

_CONTACT_EVENTS: Final[Mapping[str, tuple[Entity, Change]]] = {
    "contact.user.created_v3": ("user", "created"),
    "contact.user.updated_v3": ("user", "updated"),
    "contact.user.deleted_v3": ("user", "deleted"),
    "contact.department.created_v3": ("department", "created"),
    "contact.department.updated_v3": ("department", "updated"),
    "contact.department.deleted_v3": ("department", "deleted"),
}
SCOPE_UPDATED: Final = "contact.scope.updated_v3"
# Every event type the app must subscribe to (README, "Connecting a Feishu company").
CONTACT_EVENT_TYPES: Final = (*_CONTACT_EVENTS, SCOPE_UPDATED)
IGNORED_EVENT_TYPES: Final[Mapping[str, str]] = {
    # Custom field definitions switched on or off: no user changes with it.
    "contact.custom_attr_event.updated_v3": "custom_field_definitions_not_mapped",
    # Employee types and user groups are not mapped to SCIM (docs/design.md).
    "contact.employee_type_enum.created_v3": "employee_types_not_mapped",
    "contact.employee_type_enum.updated_v3": "employee_types_not_mapped",
    "contact.employee_type_enum.deleted_v3": "employee_types_not_mapped",
    "contact.employee_type_enum.actived_v3": "employee_types_not_mapped",
    "contact.employee_type_enum.deactivated_v3": "employee_types_not_mapped",
}


def public_refusal(error: CallbackError) -> tuple[int, str]:
    """The status and reason a refused Feishu request is answered with. Only a body too
    large or too slow keeps its own: they say nothing of keys or contents."""
    if isinstance(error, BodyTooLarge | BodyTimeout):
        return error.http_status, error.public_reason
    return PUBLIC_REFUSAL


def open_callback(
    tenant: TenantSettings, headers: Mapping[str, str], body: bytes, now: float, skew: int
) -> Opened:
    """POST: verify, decrypt and normalize. `headers` looks names up in lower case."""
    app = tenant.feishu
    if app is None:
        raise MalformedEnvelope("tenant has no Feishu app configured")
    if app.encrypt_key is None:
        fields = json_object(body, "body", MalformedEnvelope)
        if "encrypt" in fields:
            raise MalformedEnvelope("body is encrypted but the tenant has no encrypt_key")
    else:
        signed = _SignedBody(
            app.encrypt_key.reveal(), app.aes_key or b"", body, app.accept_unsigned_challenge
        )
        fields = _decrypted(signed, headers, now, skew)
    _check_token(app, fields)
    if fields.get("type") == HANDSHAKE:
        return Opened((), handshake=True, challenge=_challenge(fields))
    return normalize(tenant.id, app, fields, received_at=now)


@dataclass(frozen=True, slots=True)
class _SignedBody:
    encrypt_key: str
    aes_key: bytes
    body: bytes
    unsigned_challenge: bool


def _decrypted(
    signed: _SignedBody, headers: Mapping[str, str], now: float, skew: int
) -> dict[str, Any]:
    """The signature over the raw bytes, then the window; only then is the body read."""
    timestamp, nonce, given = (headers.get(h) for h in _SIGNING_HEADERS)
    if not (timestamp and nonce and given):
        if not signed.unsigned_challenge:
            raise SignatureMismatch  # refused unread: no decryption for the unsigned
        return _unsigned_challenge(signed)
    if not is_timestamp(timestamp):
        raise BadRequest("X-Lark-Request-Timestamp is not a number")
    if not feishu_crypto.signature_holds(given, timestamp, nonce, signed.encrypt_key, signed.body):
        raise SignatureMismatch
    check_window(timestamp, now, skew)
    encrypt = _encrypt_member(json_object(signed.body, "body", MalformedEnvelope))
    plaintext = feishu_crypto.decrypt(signed.aes_key, encrypt)
    return json_object(plaintext, "plaintext", MalformedPlaintext)


_SIGNING_HEADERS: Final = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)


def _unsigned_challenge(signed: _SignedBody) -> dict[str, Any]:
    """An unsigned request is taken only as a URL verification; whatever else it is, or
    whatever fails in it, it is refused for its missing signature. (Its decryption takes a
    little longer or shorter by how far it got: docs/vendors.md §3.2 says why that is left.)"""
    try:
        encrypt = _encrypt_member(json_object(signed.body, "body", MalformedEnvelope))
        fields = json_object(
            feishu_crypto.decrypt(signed.aes_key, encrypt), "plaintext", MalformedPlaintext
        )
    except CallbackError as exc:
        raise SignatureMismatch from exc
    if fields.get("type") != HANDSHAKE:
        raise SignatureMismatch
    return fields


def _check_token(app: FeishuApp, fields: Mapping[str, Any]) -> None:
    """`header.token` in a 2.0 event, `token` in a URL verification; constant time."""
    header = fields.get("header")
    token = header.get("token") if isinstance(header, dict) else fields.get("token")
    given = token.encode("utf-8", "replace") if isinstance(token, str) else b""
    if not hmac.compare_digest(given, app.verification_token.reveal().encode()):
        raise BadToken


def _challenge(fields: Mapping[str, Any]) -> str:
    challenge = fields.get("challenge")
    if (
        not isinstance(challenge, str)
        or not 0 < len(challenge) <= _MAX_CHALLENGE_CHARS
        or not challenge.isascii()
        or not challenge.isprintable()
    ):
        raise MalformedPlaintext("url_verification without a usable challenge")
    return challenge


def normalize(
    tenant_id: str, app: FeishuApp, fields: Mapping[str, Any], received_at: float
) -> Opened:
    """A verified 2.0 event -> the events it stands for."""
    if fields.get("schema") != "2.0":
        return Opened((), "unsupported_schema")
    header = fields.get("header")
    event = fields.get("event")
    if not isinstance(header, dict) or not isinstance(event, dict):
        raise MalformedPlaintext("event has no header or event object")
    _check_app(app, header)
    event_type, event_id = header.get("event_type"), header.get("event_id")
    if not isinstance(event_type, str) or not isinstance(event_id, str) or not event_id:
        raise MalformedPlaintext("header has no event_type or event_id")
    if event_type in IGNORED_EVENT_TYPES:
        return Opened((), IGNORED_EVENT_TYPES[event_type])
    if event_type == SCOPE_UPDATED:
        changes = _scope_changes(app, event)
    elif kind := _CONTACT_EVENTS.get(event_type):
        changes = [_contact_change(app, *kind, event)]
    else:
        return Opened((), "unsupported_event_type")
    if not changes:
        return Opened((), "no_entity_ids")
    # Feishu redelivers with the same event_id (docs/vendors.md §3.3): the identity.
    identity = f"event_id:{event_id}".encode()
    occurred = _occurred_at(header, received_at)
    raw = _raw(fields)
    return Opened(
        tuple(
            ContactEvent(
                event_id=make_event_id("feishu", tenant_id, identity, index),
                tenant=tenant_id,
                vendor="feishu",
                entity=entity,
                entity_id=entity_id,
                change=change,
                occurred_at=utc_iso(occurred),
                received_at=utc_iso(received_at),
                raw=raw if len(changes) == 1 else _scope_raw(header, entity, change, entity_id),
                attributes=_attributes(entity, entity_id, new_id),
            )
            for index, (entity, change, entity_id, new_id) in enumerate(changes)
        )
    )


FeishuChange = tuple[
    Entity, Change, str, str | None
]  # entity, change, id, the new id of a renamed user


def _contact_change(
    app: FeishuApp, entity: Entity, change: Change, event: Mapping[str, Any]
) -> FeishuChange:
    """One contact v3 event's change. `old_object` holds the fields that changed: a department
    with a new parent moved, one with a new name was renamed; a user whose own id changed is
    renamed (the id the target knows is the old one, `new_userid` the one to move to)."""
    obj, old = event.get("object"), event.get("old_object")
    entity_id = _entity_id(app, entity, obj)
    if change != "updated" or not isinstance(old, dict):
        return entity, change, entity_id, None
    if entity == "department":
        if "parent_department_id" in old:
            return entity, "moved", entity_id, None
        return entity, "renamed" if "name" in old else change, entity_id, None
    previous = old.get(app.user_id_type)
    if isinstance(previous, str) and previous and previous != entity_id:
        return entity, "renamed", _entity_id(app, entity, old), entity_id
    return entity, change, entity_id, None


def _attributes(entity: Entity, entity_id: str, new_id: str | None) -> dict[str, AttributeValue]:
    if entity == "department":
        return {"id": entity_id}
    return {"userid": entity_id} if new_id is None else {"userid": entity_id, "new_userid": new_id}


def _check_app(app: FeishuApp, header: Mapping[str, Any]) -> None:
    """An event for another app or company was sent to the wrong URL: refused, never mixed in."""
    if header.get("app_id", app.app_id) != app.app_id:
        raise MalformedPlaintext("event for another app_id")
    if header.get("tenant_key", app.tenant_key) != app.tenant_key:
        raise MalformedPlaintext("event for another tenant_key")


def _scope_changes(app: FeishuApp, event: Mapping[str, Any]) -> list[FeishuChange]:
    """Who and what entered (`added`) and left (`removed`) what the app may see."""
    changes: list[FeishuChange] = []
    sides: tuple[tuple[str, Change], ...] = (("added", "created"), ("removed", "deleted"))
    for side, change in sides:
        listed = event.get(side) or {}
        if not isinstance(listed, dict):
            raise MalformedPlaintext(f"event.{side} is not an object")
        kinds: tuple[tuple[Entity, str], ...] = (("department", "departments"), ("user", "users"))
        for entity, name in kinds:
            objects = listed.get(name) or []
            if not isinstance(objects, list):
                raise MalformedPlaintext(f"event.{side}.{name} is not a list")
            changes.extend((entity, change, _entity_id(app, entity, o), None) for o in objects)
    return list(dict.fromkeys(changes))


def _entity_id(app: FeishuApp, entity: Entity, obj: Any) -> str:
    """The id the tenant is configured to key on (`user_id_type`, `department_id_type`)."""
    name = app.user_id_type if entity == "user" else app.department_id_type
    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_ID_CHARS or not value.isprintable():
        # Feishu leaves out the fields the app has no permission for (user_id among them).
        raise MalformedPlaintext(f"{entity} object has no usable {name}")
    return value


def _occurred_at(header: Mapping[str, Any], received_at: float) -> float:
    created = header.get("create_time")
    if isinstance(created, str) and is_timestamp(created):
        return epoch_seconds(created)
    return received_at


def _raw(fields: Mapping[str, Any]) -> str:
    """The event as received, less the verification token: the topic is no place for it."""
    header = {k: v for k, v in fields["header"].items() if k != "token"}
    return orjson.dumps({**fields, "header": header}).decode()


def _scope_raw(header: Mapping[str, Any], entity: Entity, change: Change, entity_id: str) -> str:
    """What one of a scope change's events keeps: the header, less the token, and its own
    entity. A copy of the whole change in each would grow with the square of its size."""
    kept = {k: v for k, v in header.items() if k != "token" and isinstance(v, str)}
    side = "added" if change == "created" else "removed"
    return orjson.dumps({"header": kept, "event": {side: {entity: entity_id}}}).decode()


def _encrypt_member(envelope: Mapping[str, Any]) -> str:
    encrypt = envelope.get("encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise MalformedEnvelope("body has no encrypt member")
    return encrypt
