"""A tenant's table, and a SCIM target's (the default `[scim]` or a tenant's own): ids, vendors,
keys, and the secrets that may come from the environment."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, Final, cast

from schemas.config.feishu import FEISHU_KEYS, feishu_app
from schemas.config.fields import (
    optional_text,
    refuse_placeholder,
    reject_unknown,
    secret,
    text,
)
from schemas.config.model import (
    DEFAULT_API_QPS,
    ConfigError,
    ScimSettings,
    Secret,
    TenantSettings,
)
from schemas.config.provisioning import (
    PROVISIONING_KEYS,
    PROVISIONING_SECRETS,
    provisioning_settings,
)
from schemas.mapping.attributes import AttributeMapping, parse_mapping
from schemas.mapping.expression import MappingError
from schemas.mapping.scope import Scope, parse_scope
from schemas.types import CallbackMode, DepartmentMode, UserDeletePolicy, Vendor

_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DEFAULT_API_BASE: Final[Mapping[str, str]] = {
    "wecom": "https://qyapi.weixin.qq.com",
    "dingtalk": "https://oapi.dingtalk.com",
    "feishu": "https://open.feishu.cn",
}
_TENANT_SECRETS: Final = (
    "callback_token",
    "encoding_aes_key",
    "aes_key",
    "api_secret",
    "app_secret",
    "previous_callback_token",
    "previous_encoding_aes_key",
    "previous_aes_key",
    "directory_token",
    "verification_token",
    "encrypt_key",
    *PROVISIONING_SECRETS,
)
# Keys that only WeCom and DingTalk tenants have, or only Feishu ones.
_SHA1_SCHEME_KEYS: Final = frozenset(
    {"corp_id", "app_key", "callback_mode", "callback_token", "encoding_aes_key", "aes_key"}
    | {"previous_callback_token", "previous_encoding_aes_key", "previous_aes_key", "api_secret"}
)
_FEISHU_ONLY: Final = FEISHU_KEYS | {"verification_token", "encrypt_key"}


def scim_settings(t: Mapping[str, Any], where: str, env_token: str | None) -> ScimSettings:
    d = ScimSettings()
    reject_unknown(t, where, set(ScimSettings.__slots__) | {"mapping_tables"})
    token = env_token or optional_text(t, where, "bearer_token")
    refuse_placeholder(token, f"{where}.bearer_token")
    user_delete = text(t, where, "user_delete", d.user_delete)
    if user_delete not in ("deactivate", "delete"):
        raise ConfigError(f"{where}.user_delete: must be 'deactivate' or 'delete'")
    mode = text(t, where, "department_mode", d.department_mode)
    if mode not in ("auto", "extension", "nested", "flat"):
        raise ConfigError(f"{where}.department_mode: must be auto, extension, nested or flat")
    base_url = text(t, where, "base_url", d.base_url).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.base_url: must be an http(s) URL")
    user_name = text(t, where, "user_name", d.user_name)
    # Only the four bare names: `{userid.__class__}` and its like must never reach str.format.
    if re.search(r"[{}]", re.sub(r"\{(?:userid|tenant|vendor|corp_id)\}", "", user_name)):
        raise ConfigError(
            f"{where}.user_name: placeholders are {{userid}}, {{tenant}}, {{vendor}}, {{corp_id}}"
        )
    if "{userid}" not in user_name:
        raise ConfigError(f"{where}.user_name: must contain {{userid}}")
    return ScimSettings(
        base_url=base_url,
        bearer_token=Secret(token) if token else None,
        user_delete=cast(UserDeletePolicy, user_delete),
        department_mode=cast(DepartmentMode, mode),
        timeout_seconds=float(t.get("timeout_seconds", d.timeout_seconds)),
        user_name=user_name,
        max_requests_per_second=_rate(t, where, d.max_requests_per_second),
        scope=scope_of(t, where),
        mapping=mapping_of(t, where),
    )


def scope_of(t: Mapping[str, Any], where: str) -> Scope:
    scope = t.get("scope", {})
    if not isinstance(scope, dict):
        raise ConfigError(f"{where}.scope: must be a table")
    try:
        return parse_scope(scope, f"{where}.scope")
    except MappingError as exc:
        raise ConfigError(str(exc)) from None


def mapping_of(t: Mapping[str, Any], where: str) -> AttributeMapping:
    """`mapping` (attribute = expression) with its `mapping_tables`; every mistake is a
    `ConfigError` that names the key."""
    entries, tables = t.get("mapping", {}), t.get("mapping_tables", {})
    if not isinstance(entries, dict) or not isinstance(tables, dict):
        raise ConfigError(f"{where}.mapping and {where}.mapping_tables: must be tables")
    try:
        return parse_mapping(entries, tables, f"{where}.mapping")
    except MappingError as exc:
        raise ConfigError(str(exc)) from None


def _rate(t: Mapping[str, Any], where: str, default: float) -> float:
    value = t.get("max_requests_per_second", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}.max_requests_per_second: must be a number >= 0 (0: no limit)")
    return float(value)


def tenant_settings(t: Any, where: str, environ: Mapping[str, str]) -> TenantSettings:
    if not isinstance(t, dict):
        raise ConfigError(f"{where}: must be a table")
    allowed = {
        "id",
        "vendor",
        "corp_id",
        "api_base",
        "api_qps",
        "proxy",
        "app_key",
        "callback_mode",
        "scim",
        *_TENANT_SECRETS,
        *FEISHU_KEYS,
        *PROVISIONING_KEYS,
    }
    reject_unknown(t, where, allowed)
    tenant_id = text(t, where, "id", None)
    if not _TENANT_ID.fullmatch(tenant_id):
        raise ConfigError(f"{where}.id: letters, digits, '.', '_' or '-' (at most 63)")
    vendor = text(t, where, "vendor", None)
    if vendor not in _DEFAULT_API_BASE:
        raise ConfigError(f"{where}.vendor: must be one of {', '.join(_DEFAULT_API_BASE)}")
    prefix = "ORGSTREAM_TENANT_" + re.sub(r"[^A-Za-z0-9]", "_", tenant_id).upper() + "_"
    secrets = {
        k: environ.get(prefix + k.upper()) or optional_text(t, where, k) for k in _TENANT_SECRETS
    }
    for name, value in secrets.items():
        refuse_placeholder(value, f"{where}.{name} ({prefix}{name.upper()})")
    foreign = _SHA1_SCHEME_KEYS if vendor == "feishu" else _FEISHU_ONLY
    if clash := sorted(foreign & set(t)):
        raise ConfigError(f"{where}.{clash[0]}: not a key of a {vendor} tenant")
    provisioning = provisioning_settings(t, where, vendor, secrets, prefix)
    if vendor == "feishu":
        return _feishu_tenant(t, where, tenant_id, secrets, prefix)
    key_name = "encoding_aes_key" if vendor == "wecom" else "aes_key"
    token, aes_key = secrets["callback_token"], secrets[key_name] or secrets["encoding_aes_key"]
    previous_key = secrets[f"previous_{key_name}"] or secrets["previous_encoding_aes_key"]
    if not token:
        raise ConfigError(f"{where}.callback_token: required (or {prefix}CALLBACK_TOKEN)")
    if not aes_key:
        raise ConfigError(f"{where}.{key_name}: required (or {prefix}{key_name.upper()})")
    app_key = optional_text(t, where, "app_key")
    default_mode = "subscription" if app_key else "legacy"
    mode = text(t, where, "callback_mode", default_mode)
    if mode not in ("subscription", "legacy"):
        raise ConfigError(f"{where}.callback_mode: must be 'subscription' or 'legacy'")
    if vendor == "dingtalk" and mode == "subscription" and not app_key:
        raise ConfigError(f"{where}.app_key: required when callback_mode is 'subscription'")
    return TenantSettings(
        id=tenant_id,
        vendor=cast(Vendor, vendor),
        corp_id=text(t, where, "corp_id", None),
        callback_token=Secret(token),
        aes_key=decode_aes_key(aes_key, f"{where}.{key_name}"),
        api_base=text(t, where, "api_base", _DEFAULT_API_BASE[vendor]).rstrip("/"),
        api_secret=secret(secrets["api_secret"]),
        app_key=app_key,
        app_secret=secret(secrets["app_secret"]),
        proxy=_proxy(t, where),
        scim=_own_scim(t, where),
        callback_mode=cast(CallbackMode, mode),
        api_qps=_api_qps(t, where),
        previous_callback_token=secret(secrets["previous_callback_token"]),
        directory_token=secret(secrets["directory_token"]),
        previous_aes_key=(
            decode_aes_key(previous_key, f"{where}.previous_{key_name}") if previous_key else None
        ),
        provisioning=provisioning,
    )


def _feishu_tenant(
    t: Mapping[str, Any],
    where: str,
    tenant_id: str,
    secrets: Mapping[str, str | None],
    prefix: str,
) -> TenantSettings:
    app = feishu_app(t, where, secrets, prefix)
    return TenantSettings(
        id=tenant_id,
        vendor="feishu",
        corp_id=app.tenant_key,  # externalIds name the company: feishu:<tenant_key>:…
        callback_token=app.verification_token,
        aes_key=b"",
        api_base=text(t, where, "api_base", _DEFAULT_API_BASE["feishu"]).rstrip("/"),
        app_key=app.app_id,
        app_secret=secret(secrets["app_secret"]),
        proxy=_proxy(t, where),
        scim=_own_scim(t, where),
        api_qps=_api_qps(t, where),
        directory_token=secret(secrets["directory_token"]),
        feishu=app,
    )


def _proxy(t: Mapping[str, Any], where: str) -> str | None:
    proxy = optional_text(t, where, "proxy")
    if proxy and not proxy.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.proxy: must be an http:// or https:// proxy URL")
    return proxy


def _api_qps(t: Mapping[str, Any], where: str) -> float:
    qps = t.get("api_qps", DEFAULT_API_QPS)
    if not isinstance(qps, int | float) or isinstance(qps, bool) or qps <= 0:
        raise ConfigError(f"{where}.api_qps: must be a positive number")
    return float(qps)


def _own_scim(t: Mapping[str, Any], where: str) -> ScimSettings | None:
    scim_table = t.get("scim")
    return (
        scim_settings(scim_table, f"{where}.scim", None) if isinstance(scim_table, dict) else None
    )


def decode_aes_key(encoding_aes_key: str, where: str = "encoding_aes_key") -> bytes:
    """43 characters of [A-Za-z0-9] + '=' -> the 32-byte AES-256 key
    (docs/vendors.md §0)."""
    if not _AES_KEY.fullmatch(encoding_aes_key):
        raise ConfigError(f"{where}: must be exactly 43 characters from [A-Za-z0-9]")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"{where}: not a valid key") from exc
    if len(key) != 32:
        raise ConfigError(f"{where}: must decode to 32 bytes")
    return key
