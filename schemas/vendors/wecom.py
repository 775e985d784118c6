"""WeCom `change_contact` callbacks: envelope -> verified plaintext -> normalized events.

Pure: no I/O. `open_url_verification` answers the GET handshake, `open_callback` turns a POST
into events (or a reason to ignore it). Both raise `CallbackError` subclasses on bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from schemas.config import TenantSettings
from schemas.event import AttributeValue, ContactEvent, make_event_id, utc_iso
from schemas.types import Change, Entity
from schemas.vendors import crypto
from schemas.vendors.callback import Opened, check_window, require
from schemas.vendors.errors import (
    BadEchostr,
    CallbackError,
    MalformedEnvelope,
    MalformedPlaintext,
)
from schemas.vendors.flatxml import NotFlatXml, flat_fields
from schemas.vendors.numbers import MAX_TIMESTAMP_DIGITS, ascii_int, is_timestamp

_Parse = Callable[[str], AttributeValue]
# What WeCom's URL verification sends as `echostr` once decrypted: a short random string. The
# handshake answers nothing else, so it can never decrypt a captured callback for anyone.
_ECHO: Final = re.compile(rb"[A-Za-z0-9]{1,64}")


def _csv_ints(text: str) -> list[int]:
    return [ascii_int(part.strip()) for part in text.split(",") if part.strip()]


def _small(high: int) -> _Parse:
    def parse(text: str) -> int:
        return ascii_int(text, 0, high)

    return parse


def _csv_strs(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# WeCom element -> (normalized attribute name, parser). Fields not listed are kept only in `raw`.
_USER_FIELDS: Final[Mapping[str, tuple[str, _Parse]]] = {
    "UserID": ("userid", str),
    "NewUserID": ("new_userid", str),
    "Name": ("name", str),
    "Department": ("departments", _csv_ints),
    "MainDepartment": ("main_department", ascii_int),
    "IsLeaderInDept": ("is_leader_in_dept", _csv_ints),
    "DirectLeader": ("direct_leaders", _csv_strs),
    "Position": ("position", str),
    "Mobile": ("mobile", str),
    "Gender": ("gender", _small(9)),
    "Email": ("email", str),
    "BizMail": ("biz_mail", str),
    "Status": ("status", _small(9)),
    "Avatar": ("avatar", str),
    "Alias": ("alias", str),
    "Telephone": ("telephone", str),
    "Address": ("address", str),
}
_DEPARTMENT_FIELDS: Final[Mapping[str, tuple[str, _Parse]]] = {
    "Id": ("id", ascii_int),
    "Name": ("name", str),
    "ParentId": ("parent_id", ascii_int),
    "Order": ("order", ascii_int),
}
# ChangeType -> entity; the change itself depends on the fields (see `_change_of`).
_ENTITY_OF: Final[Mapping[str, Entity]] = {
    "create_user": "user",
    "update_user": "user",
    "delete_user": "user",
    "create_party": "department",
    "update_party": "department",
    "delete_party": "department",
}
# ChangeTypes we acknowledge and deliberately do not publish, with the reason we log.
IGNORED_CHANGE_TYPES: Final[Mapping[str, str]] = {
    # Tags have no place in the SCIM mapping (docs/design.md); publishing them would only make the
    # worker skip them. A later issue can map tags to Groups and start publishing.
    "update_tag": "tags_not_mapped",
}


def open_url_verification(
    tenant: TenantSettings, params: Mapping[str, str], now: float, skew: int
) -> str:
    """GET handshake: verify, decrypt `echostr`, return the plaintext to echo back raw; only a
    short alphanumeric string made for the tenant's corp id is ever echoed."""
    signature, timestamp, nonce = _signed_params(params)
    echostr = require(params, "echostr")
    _, echo = crypto.open_signed(
        tenant.callback_keys(), timestamp, nonce, echostr, signature, tenant.receive_id,
        lambda: check_window(timestamp, now, skew),
    )  # fmt: skip
    if not _ECHO.fullmatch(echo):
        raise BadEchostr
    return echo.decode("ascii")


def open_callback(
    tenant: TenantSettings, params: Mapping[str, str], body: bytes, now: float, skew: int
) -> Opened:
    """POST: check signature, then window, then decrypt; normalize the plaintext."""
    signature, timestamp, nonce = _signed_params(params)
    encrypt = _envelope_encrypt(body)
    _, plaintext = crypto.open_signed(
        tenant.callback_keys(), timestamp, nonce, encrypt, signature, tenant.receive_id,
        lambda: check_window(timestamp, now, skew),
    )  # fmt: skip
    return normalize(tenant.id, plaintext, received_at=now)


def normalize(tenant_id: str, plaintext: bytes, received_at: float) -> Opened:
    """Decrypted `change_contact` XML -> one event per changed entity."""
    fields = _xml_fields(plaintext, MalformedPlaintext)
    if fields.get("Event") != "change_contact":
        return Opened((), "not_a_contact_event")
    change_type = fields.get("ChangeType", "")
    if change_type in IGNORED_CHANGE_TYPES:
        return Opened((), IGNORED_CHANGE_TYPES[change_type])
    entity = _ENTITY_OF.get(change_type)
    if entity is None:
        return Opened((), "unsupported_change_type")
    spec = _USER_FIELDS if entity == "user" else _DEPARTMENT_FIELDS
    attributes = _attributes(fields, spec)
    id_name = "userid" if entity == "user" else "id"
    if attributes.get(id_name) in (None, ""):
        raise MalformedPlaintext(f"{change_type} without {id_name}")
    created = _int_or(fields.get("CreateTime"), received_at)
    event = ContactEvent(
        event_id=make_event_id("wecom", tenant_id, plaintext, 0),
        tenant=tenant_id,
        vendor="wecom",
        entity=entity,
        entity_id=str(attributes[id_name]),
        change=_change_of(change_type, attributes),
        occurred_at=utc_iso(created),
        received_at=utc_iso(received_at),
        raw=plaintext.decode(),
        attributes=attributes,
    )
    return Opened((event,))


def _change_of(change_type: str, attributes: Mapping[str, AttributeValue]) -> Change:
    if change_type.startswith("create_"):
        return "created"
    if change_type.startswith("delete_"):
        return "deleted"
    if change_type == "update_user":
        return "renamed" if attributes.get("new_userid") else "updated"
    # update_party: since 2022-08-15 WeCom fires it only for a new ParentId (renames are silent).
    if "parent_id" in attributes:
        return "moved"
    return "renamed" if "name" in attributes else "updated"


def _attributes(
    fields: Mapping[str, str], spec: Mapping[str, tuple[str, _Parse]]
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    for element, (name, parse) in spec.items():
        if element in fields:
            try:
                attributes[name] = parse(fields[element])
            except ValueError as exc:
                raise MalformedPlaintext(f"{element} is not well-formed") from exc
    return attributes


def _signed_params(params: Mapping[str, str]) -> tuple[str, str, str]:
    return (
        require(params, "msg_signature"),
        require(params, "timestamp"),
        require(params, "nonce"),
    )


def _envelope_encrypt(body: bytes) -> str:
    """The `<Encrypt>` text of the outer XML envelope."""
    encrypt = _xml_fields(body, MalformedEnvelope).get("Encrypt")
    if not encrypt:
        raise MalformedEnvelope("envelope has no Encrypt element")
    return encrypt


def _xml_fields(document: bytes, error: type[CallbackError]) -> dict[str, str]:
    """Top-level elements of a flat `<xml>` document as text (CDATA or bare)."""
    try:
        return flat_fields(document)
    except NotFlatXml as exc:
        raise error(f"not a flat <xml> document: {exc}") from exc


def _int_or(text: str | None, default: float) -> float:
    if text and is_timestamp(text) and len(text) < MAX_TIMESTAMP_DIGITS - 2:
        return int(text)  # epoch seconds: 11 digits at most
    return default
