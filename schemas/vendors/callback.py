"""What every vendor's callback handling shares: the query string, the timestamp window, and the
result of opening a callback (`Opened`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from schemas.config import CallbackKey
from schemas.event import ContactEvent
from schemas.vendors.errors import BadRequest, CallbackError, StaleTimestamp
from schemas.vendors.numbers import is_timestamp

# Epoch seconds pass 1e11 in the year 5138; anything larger is milliseconds (DingTalk,
# docs/vendors.md §2.2).
_MILLISECONDS_FROM = 10**11


@dataclass(frozen=True, slots=True)
class Opened:
    """A verified callback: the events to publish, or why there are none (a handshake is
    answered like an accepted callback and publishes nothing), and the key that opened it
    (a reply is encrypted with the same one while a rotation lasts). `challenge` is what a
    Feishu URL verification asks to have echoed."""

    events: tuple[ContactEvent, ...]
    ignored_reason: str | None = None
    handshake: bool = False
    key: CallbackKey | None = None
    challenge: str | None = None


def parse_query(query_string: str) -> dict[str, str]:
    """Percent-decode without turning '+' into a space: signatures and echostr are base64."""
    params: dict[str, str] = {}
    for pair in query_string.split("&"):
        name, _, value = pair.partition("=")
        if name:
            params.setdefault(unquote(name), unquote(value))
    return params


def require(params: Mapping[str, str], *names: str) -> str:
    """The first of `names` present and non-empty (vendors spell some parameters two ways)."""
    for name in names:
        value = params.get(name)
        if value:
            return value
    raise BadRequest(f"missing query parameter {names[0]}")


def epoch_seconds(timestamp: str) -> float:
    """A vendor timestamp in seconds or milliseconds, as seconds."""
    if not is_timestamp(timestamp):
        raise BadRequest("timestamp is not a number")
    value = int(timestamp)
    return value / 1000 if value >= _MILLISECONDS_FROM else float(value)


def check_window(timestamp: str, now: float, skew: int) -> None:
    if abs(now - epoch_seconds(timestamp)) > skew:
        raise StaleTimestamp


def json_object(document: bytes, what: str, error: type[CallbackError]) -> dict[str, Any]:
    """A JSON object, or `error` naming `what` was not one."""
    try:
        data = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        raise error(f"{what} is not JSON") from exc
    if not isinstance(data, dict):
        raise error(f"{what} is not a JSON object")
    return data
