"""Reading one value of the configuration: its type, its range, and secrets that may not stay
example values. Every message names the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from schemas.config.model import ConfigError, Secret

# What deploy/'s examples ship instead of secrets: refused, so an example never runs as is.
PLACEHOLDERS: Final = ("replace-me", "change-me", "changeme")


def seconds(
    t: Mapping[str, Any], where: str, key: str, default: float, unit: str = "seconds"
) -> float:
    value = t.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}.{key}: must be a positive number of {unit}")
    return float(value)


def refuse_placeholder(value: str | None, where: str) -> None:
    if value and any(marker in value.lower() for marker in PLACEHOLDERS):
        raise ConfigError(f"{where}: still the example value; put the real secret there")


def secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def table(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a table ([{name}])")
    return value


def reject_unknown(t: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in t:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise ConfigError(f"{name}: unknown key")


def text(t: Mapping[str, Any], where: str, key: str, default: str | None) -> str:
    value = t.get(key, default)
    if value is None:
        raise ConfigError(f"{where}.{key}: required")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: must be a non-empty string")
    return value


def optional_text(t: Mapping[str, Any], where: str, key: str) -> str | None:
    value = t.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string")
    return value or None


def integer(
    t: Mapping[str, Any], where: str, key: str, default: int, low: int, high: int | None = None
) -> int:
    value = t.get(key, default)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f" and at most {high}" if high is not None else ""
        raise ConfigError(f"{where}.{key}: must be an integer of at least {low}{bound}")
    return value
