"""DingTalk HTTP event callbacks (docs/vendors.md §2): envelope -> verified
plaintext -> events.

Pure: no I/O. Both payload styles are read: the legacy `register_call_back` one (`UserId`,
`DeptId`, `TimeStamp`, receive id = corp id) and the event-subscription one (`userId`,
`deptId`, `EventTime`, `eventId`, receive id = app key). Events carry ids only; the worker
fetches the rest. Every answer, the `check_url` handshake included, is the encrypted `success`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import orjson

from schemas.config import CallbackKey, TenantSettings
from schemas.event import ContactEvent, make_event_id, utc_iso
from schemas.types import Change, Entity
from schemas.vendors import crypto
from schemas.vendors.callback import Opened, check_window, epoch_seconds, json_object, require
from schemas.vendors.errors import MalformedEnvelope, MalformedPlaintext
from schemas.vendors.numbers import ascii_int, is_timestamp

HANDSHAKE: Final = "check_url"
# DingTalk gives up on a reply after 1.5 s (docs/vendors.md §2.3): the broker gets
# 1 s, the rest is for the network. A callback not acked by then is answered 503 and DingTalk
# delivers it again.
PUBLISH_DEADLINE_SECONDS: Final = 1.0
# EventType -> (entity, change). One event is published per id the callback lists.
_CONTACT_EVENTS: Final[Mapping[str, tuple[Entity, Change]]] = {
    "user_add_org": ("user", "created"),
    "user_modify_org": ("user", "updated"),
    "user_active_org": ("user", "updated"),
    "user_leave_org": ("user", "deleted"),
    "org_dept_create": ("department", "created"),
    "org_dept_modify": ("department", "updated"),  # rename and move look the same: fetch
    "org_dept_remove": ("department", "deleted"),
}
# EventTypes we acknowledge and deliberately do not publish, with the reason we log.
IGNORED_EVENT_TYPES: Final[Mapping[str, str]] = {
    # The admin flag has no place in the SCIM mapping (docs/design.md); the user's own attributes
    # do not change with it, so there is nothing to fetch either.
    "org_admin_add": "admin_flag_not_mapped",
    "org_admin_remove": "admin_flag_not_mapped",
    # Roles (labels) are not mapped to Groups yet, as WeCom tags are not.
    "label_user_change": "roles_not_mapped",
    "label_conf_add": "roles_not_mapped",
    "label_conf_modify": "roles_not_mapped",
    "label_conf_del": "roles_not_mapped",
    "org_change": "company_info_not_mapped",
    "org_remove": "company_info_not_mapped",
}
# What each event of a many-id callback keeps besides its id; each at most this long.
_KEPT_FIELDS: Final = ("EventType", "eventId", "CorpId", "TimeStamp", "EventTime", "OptStaffId")
_MAX_KEPT_CHARS: Final = 128
_ID_FIELDS: Final[Mapping[Entity, tuple[str, str]]] = {
    "user": ("UserId", "userId"),
    "department": ("DeptId", "deptId"),
}


def open_callback(
    tenant: TenantSettings, params: Mapping[str, str], body: bytes, now: float, skew: int
) -> Opened:
    """POST: check signature, then window, then decrypt; normalize the plaintext."""
    signature = require(params, "msg_signature", "signature")
    timestamp = require(params, "timestamp", "timeStamp")
    nonce = require(params, "nonce")
    encrypt = _envelope_encrypt(body)
    key, plaintext = crypto.open_signed(
        tenant.callback_keys(), timestamp, nonce, encrypt, signature, tenant.receive_id,
        lambda: check_window(timestamp, now, skew),
    )  # fmt: skip
    opened = normalize(tenant.id, plaintext, received_at=now)
    return Opened(opened.events, opened.ignored_reason, opened.handshake, key)


def success_reply(tenant: TenantSettings, now: float, key: CallbackKey | None) -> dict[str, str]:
    """The answer DingTalk requires (docs/vendors.md §2.3): `success` encrypted for
    the tenant, freshly signed, with the key the request came with (the current one when
    none did)."""
    key = key or tenant.callback_keys()[0]
    timestamp = str(int(now * 1000))
    nonce = os.urandom(8).hex()  # 16 alphanumerics, as the SDK's
    encrypt = crypto.encrypted_success(key.aes_key, tenant.receive_id)
    signature = crypto.signature(key.token.reveal(), timestamp, nonce, encrypt)
    return {"msg_signature": signature, "timeStamp": timestamp, "nonce": nonce, "encrypt": encrypt}


def normalize(tenant_id: str, plaintext: bytes, received_at: float) -> Opened:
    """Decrypted callback JSON -> one event per user or department id it lists."""
    fields = json_object(plaintext, "plaintext", MalformedPlaintext)
    event_type = fields.get("EventType")
    if not isinstance(event_type, str):
        raise MalformedPlaintext("plaintext has no EventType")
    if event_type == HANDSHAKE:
        return Opened((), handshake=True)
    if event_type in IGNORED_EVENT_TYPES:
        return Opened((), IGNORED_EVENT_TYPES[event_type])
    kind = _CONTACT_EVENTS.get(event_type)
    if kind is None:
        return Opened((), "unsupported_event_type")
    entity, change = kind
    id_field, ids = _entity_ids(fields, entity)
    if not ids:
        return Opened((), "no_entity_ids")
    # Subscription deliveries carry an eventId that stays the same across redeliveries; the
    # legacy style has none, so its identity is the plaintext itself (docs/vendors.md
    # §2.3, dedupe).
    event_id = fields.get("eventId")
    identity = f"eventId:{event_id}".encode() if isinstance(event_id, str) else plaintext
    occurred = _occurred_at(fields, received_at)
    events = tuple(
        ContactEvent(
            event_id=make_event_id("dingtalk", tenant_id, identity, index),
            tenant=tenant_id,
            vendor="dingtalk",
            entity=entity,
            entity_id=entity_id,
            change=change,
            occurred_at=utc_iso(occurred),
            received_at=utc_iso(received_at),
            raw=plaintext.decode() if len(ids) == 1 else _raw_for(fields, id_field, listed),
            attributes={"userid" if entity == "user" else "id": entity_id},
        )
        for index, (entity_id, listed) in enumerate(ids.items())
    )
    return Opened(events)


def _raw_for(fields: Mapping[str, Any], id_field: str, listed: str | int) -> str:
    """What one event of a callback listing many ids keeps of it: the fields that say what
    happened, when and by whom, each short, and its own id. A copy of the whole plaintext in
    each would grow with the square of the ids (4,000 ids in a 32 KB body: 128 MB); a bounded
    part of it stays linear whatever else the plaintext holds."""
    kept: dict[str, Any] = {
        name: fields[name]
        for name in _KEPT_FIELDS
        if isinstance(fields.get(name), str | int) and len(str(fields[name])) <= _MAX_KEPT_CHARS
    }
    kept[id_field] = [listed]
    return orjson.dumps(kept).decode()


def _entity_ids(fields: Mapping[str, Any], entity: Entity) -> tuple[str, dict[str, str | int]]:
    """The field that lists the ids, and the ids de-duplicated in order, each with the value
    the callback lists it as; user ids are strings, department ids integers (ASCII digits,
    64-bit at most)."""
    legacy, subscription = _ID_FIELDS[entity]
    name = legacy if legacy in fields else subscription
    raw = fields.get(name)
    if raw is None:
        return name, {}
    if not isinstance(raw, list):
        raise MalformedPlaintext(f"{legacy} is not a list")
    ids: dict[str, str | int] = {}  # ordered, and a membership test in O(1)
    for item in raw:
        text = str(item) if isinstance(item, str | int) and not isinstance(item, bool) else ""
        if not text or (entity == "department" and not _is_id(text)):
            raise MalformedPlaintext(f"{legacy} holds an invalid id")
        ids.setdefault(text, item)
    return name, ids


def _is_id(text: str) -> bool:
    try:
        ascii_int(text)
    except ValueError:
        return False
    return True


def _occurred_at(fields: Mapping[str, Any], received_at: float) -> float:
    for name in ("EventTime", "TimeStamp", "timeStamp"):
        value = fields.get(name)
        readable = isinstance(value, int | str) and not isinstance(value, bool)
        if readable and is_timestamp(str(value)):
            return epoch_seconds(str(value))
    return received_at


def _envelope_encrypt(body: bytes) -> str:
    encrypt = json_object(body, "body", MalformedEnvelope).get("encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise MalformedEnvelope("body has no encrypt member")
    return encrypt
