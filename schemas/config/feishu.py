"""The keys only a Feishu tenant has (docs/vendors.md §3): its app, the verification token,
the optional encrypt key, and which of Feishu's ids are the stable ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from schemas.config.fields import text
from schemas.config.model import (
    DEPARTMENT_ID_TYPES,
    USER_ID_TYPES,
    ConfigError,
    FeishuApp,
    Secret,
)

# Keys of a Feishu tenant's table besides the ones every tenant has.
FEISHU_KEYS: Final = frozenset(
    {"app_id", "tenant_key", "user_id_type", "department_id_type", "accept_unsigned_challenge"}
)


def feishu_app(
    t: Mapping[str, Any], where: str, secrets: Mapping[str, str | None], prefix: str
) -> FeishuApp:
    """The app's keys; `secrets` holds what the environment or the table gave."""
    token = secrets["verification_token"]
    if not token:
        raise ConfigError(f"{where}.verification_token: required (or {prefix}VERIFICATION_TOKEN)")
    user_id_type = text(t, where, "user_id_type", "user_id")
    if user_id_type not in USER_ID_TYPES:
        raise ConfigError(f"{where}.user_id_type: must be one of {', '.join(USER_ID_TYPES)}")
    department_id_type = text(t, where, "department_id_type", "department_id")
    if department_id_type not in DEPARTMENT_ID_TYPES:
        raise ConfigError(
            f"{where}.department_id_type: must be one of {', '.join(DEPARTMENT_ID_TYPES)}"
        )
    encrypt_key = secrets["encrypt_key"]
    unsigned = t.get("accept_unsigned_challenge", True)
    if not isinstance(unsigned, bool):
        raise ConfigError(f"{where}.accept_unsigned_challenge: must be true or false")
    return FeishuApp(
        app_id=text(t, where, "app_id", None),
        tenant_key=text(t, where, "tenant_key", None),
        verification_token=Secret(token),
        encrypt_key=Secret(encrypt_key) if encrypt_key else None,
        user_id_type=user_id_type,
        department_id_type=department_id_type,
        accept_unsigned_challenge=unsigned,
    )
