"""`orgstream.toml` -> frozen settings, loaded once at start-up.

Secrets may also come from the environment, which wins over the file:
`ORGSTREAM_SCIM_BEARER_TOKEN`, `ORGSTREAM_STORE_URL` (a PostgreSQL URL may hold a password), and
per tenant `ORGSTREAM_TENANT_<ID>_<KEY>` where `<ID>` is the tenant id upper-cased with every
non-alphanumeric character turned into `_` and `<KEY>` is the upper-cased key name (e.g.
`ORGSTREAM_TENANT_ACME_CALLBACK_TOKEN`). A bad file raises `ConfigError` naming the key; secrets
never appear in reprs or messages.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast

from schemas.config.model import (
    DEFAULT_API_QPS,
    ConfigError,
    GuardSettings,
    KafkaSettings,
    ReceiverSettings,
    ScimSettings,
    Secret,
    Settings,
    StoreSettings,
    SyncSettings,
    TenantSettings,
    WorkerSettings,
)
from schemas.types import CallbackMode, DepartmentMode, UserDeletePolicy, Vendor

_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DEFAULT_API_BASE: Final[Mapping[str, str]] = {
    "wecom": "https://qyapi.weixin.qq.com",
    "dingtalk": "https://oapi.dingtalk.com",
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
)
# What deploy/'s examples ship instead of secrets: refused, so an example never runs as is.
_PLACEHOLDERS: Final = ("replace-me", "change-me", "changeme")


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the whole file; raise `ConfigError` on the first problem."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_settings(raw, os.environ if environ is None else environ)


def parse_settings(raw: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    _reject_unknown(
        raw, "", {"kafka", "receiver", "scim", "store", "worker", "guard", "sync", "tenants"}
    )
    scim = _scim(_table(raw, "scim"), "scim", environ.get("ORGSTREAM_SCIM_BEARER_TOKEN"))
    tenants_raw = raw.get("tenants", [])
    if not isinstance(tenants_raw, list):
        raise ConfigError("tenants: must be an array of tables ([[tenants]])")
    tenants = tuple(_tenant(t, f"tenants[{i}]", environ) for i, t in enumerate(tenants_raw))
    seen: set[str] = set()
    for index, tenant in enumerate(tenants):
        if tenant.id in seen:
            raise ConfigError(f"tenants[{index}].id: duplicate tenant id {tenant.id!r}")
        seen.add(tenant.id)
    return Settings(
        kafka=_kafka(_table(raw, "kafka")),
        receiver=_receiver(_table(raw, "receiver")),
        scim=scim,
        store=_store(_table(raw, "store"), environ.get("ORGSTREAM_STORE_URL")),
        tenants=tenants,
        worker=_worker(_table(raw, "worker")),
        guard=_guard(_table(raw, "guard")),
        sync=_sync(_table(raw, "sync")),
    )


def _kafka(t: Mapping[str, Any]) -> KafkaSettings:
    d = KafkaSettings()
    _reject_unknown(t, "kafka", set(KafkaSettings.__slots__))
    return KafkaSettings(
        bootstrap_servers=_str(t, "kafka", "bootstrap_servers", d.bootstrap_servers),
        topic=_str(t, "kafka", "topic", d.topic),
        dlq_topic=_str(t, "kafka", "dlq_topic", d.dlq_topic),
        consumer_group=_str(t, "kafka", "consumer_group", d.consumer_group),
        session_timeout_ms=_int(t, "kafka", "session_timeout_ms", d.session_timeout_ms, 1000),
        cluster_name=_str(t, "kafka", "cluster_name", d.cluster_name),
    )


def _store(t: Mapping[str, Any], env_url: str | None) -> StoreSettings:
    d = StoreSettings()
    _reject_unknown(t, "store", set(StoreSettings.__slots__))
    url = env_url or _str(t, "store", "url", d.url)
    _refuse_placeholder(url, "store.url (ORGSTREAM_STORE_URL)")
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("store.url: must be sqlite:///path or postgresql://…")
    return StoreSettings(
        url=url, retention_days=_int(t, "store", "retention_days", d.retention_days, 1)
    )


def _worker(t: Mapping[str, Any]) -> WorkerSettings:
    d = WorkerSettings()
    _reject_unknown(t, "worker", set(WorkerSettings.__slots__))
    return WorkerSettings(
        retries_before_parking=_int(
            t, "worker", "retries_before_parking", d.retries_before_parking, 0, 20
        ),
        redrive_interval_seconds=_seconds(
            t, "worker", "redrive_interval_seconds", d.redrive_interval_seconds
        ),
        quarantine_probe_seconds=_seconds(
            t, "worker", "quarantine_probe_seconds", d.quarantine_probe_seconds
        ),
        metrics_host=_str(t, "worker", "metrics_host", d.metrics_host),
        metrics_port=_int(t, "worker", "metrics_port", d.metrics_port, 0, 65535),
        lag_poll_seconds=_seconds(t, "worker", "lag_poll_seconds", d.lag_poll_seconds),
    )


def _guard(t: Mapping[str, Any]) -> GuardSettings:
    d = GuardSettings()
    _reject_unknown(t, "guard", set(GuardSettings.__slots__))
    enabled = t.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError("guard.enabled: must be true or false")
    percent = t.get("max_deletion_percent", d.max_deletion_percent)
    if not isinstance(percent, int | float) or isinstance(percent, bool) or not 0 < percent <= 100:
        raise ConfigError("guard.max_deletion_percent: must be a number in (0, 100]")
    return GuardSettings(
        enabled=enabled,
        max_deletions=_int(t, "guard", "max_deletions", d.max_deletions, 1),
        max_deletion_percent=float(percent),
        window_minutes=_int(t, "guard", "window_minutes", d.window_minutes, 1),
    )


def _sync(t: Mapping[str, Any]) -> SyncSettings:
    d = SyncSettings()
    _reject_unknown(t, "sync", set(SyncSettings.__slots__))
    schedule = t.get("schedule", d.schedule)
    if not isinstance(schedule, bool):
        raise ConfigError("sync.schedule: must be true or false")
    return SyncSettings(
        schedule=schedule,
        interval_minutes=_seconds(t, "sync", "interval_minutes", d.interval_minutes, "minutes"),
        failed_callbacks_minutes=_seconds(
            t, "sync", "failed_callbacks_minutes", d.failed_callbacks_minutes, "minutes"
        ),
    )


def _seconds(
    t: Mapping[str, Any], where: str, key: str, default: float, unit: str = "seconds"
) -> float:
    value = t.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}.{key}: must be a positive number of {unit}")
    return float(value)


def _receiver(t: Mapping[str, Any]) -> ReceiverSettings:
    d = ReceiverSettings()
    _reject_unknown(t, "receiver", set(ReceiverSettings.__slots__))
    timeout = t.get("publish_timeout_seconds", d.publish_timeout_seconds)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout < 5:
        raise ConfigError("receiver.publish_timeout_seconds: must be a number in (0, 5)")
    return ReceiverSettings(
        host=_str(t, "receiver", "host", d.host),
        port=_int(t, "receiver", "port", d.port, 0, 65535),
        max_body_bytes=_int(t, "receiver", "max_body_bytes", d.max_body_bytes, 1024),
        timestamp_skew_seconds=_int(
            t, "receiver", "timestamp_skew_seconds", d.timestamp_skew_seconds, 1
        ),
        publish_timeout_seconds=float(timeout),
        metrics_host=_str(t, "receiver", "metrics_host", d.metrics_host),
        metrics_port=_int(t, "receiver", "metrics_port", d.metrics_port, 0, 65535),
        body_timeout_seconds=_seconds(
            t, "receiver", "body_timeout_seconds", d.body_timeout_seconds
        ),
        limit_concurrency=_int(t, "receiver", "limit_concurrency", d.limit_concurrency, 1),
        keep_alive_seconds=_int(t, "receiver", "keep_alive_seconds", d.keep_alive_seconds, 1, 300),
        workers=_int(t, "receiver", "workers", d.workers, 1, 64),
    )


def _scim(t: Mapping[str, Any], where: str, env_token: str | None) -> ScimSettings:
    d = ScimSettings()
    _reject_unknown(t, where, set(ScimSettings.__slots__))
    token = env_token or _opt_str(t, where, "bearer_token")
    _refuse_placeholder(token, f"{where}.bearer_token")
    user_delete = _str(t, where, "user_delete", d.user_delete)
    if user_delete not in ("deactivate", "delete"):
        raise ConfigError(f"{where}.user_delete: must be 'deactivate' or 'delete'")
    mode = _str(t, where, "department_mode", d.department_mode)
    if mode not in ("auto", "extension", "nested", "flat"):
        raise ConfigError(f"{where}.department_mode: must be auto, extension, nested or flat")
    base_url = _str(t, where, "base_url", d.base_url).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.base_url: must be an http(s) URL")
    user_name = _str(t, where, "user_name", d.user_name)
    try:
        rendered = user_name.format(userid="u", tenant="t", vendor="v", corp_id="c")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{where}.user_name: placeholders are {{userid}}, {{tenant}}, {{vendor}}, {{corp_id}}"
        ) from exc
    if "{userid}" not in user_name or not rendered.strip():
        raise ConfigError(f"{where}.user_name: must contain {{userid}}")
    return ScimSettings(
        base_url=base_url,
        bearer_token=Secret(token) if token else None,
        user_delete=cast(UserDeletePolicy, user_delete),
        department_mode=cast(DepartmentMode, mode),
        timeout_seconds=float(t.get("timeout_seconds", d.timeout_seconds)),
        user_name=user_name,
    )


def _tenant(t: Any, where: str, environ: Mapping[str, str]) -> TenantSettings:
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
    }
    _reject_unknown(t, where, allowed)
    tenant_id = _str(t, where, "id", None)
    if not _TENANT_ID.fullmatch(tenant_id):
        raise ConfigError(f"{where}.id: letters, digits, '.', '_' or '-' (at most 63)")
    vendor = _str(t, where, "vendor", None)
    if vendor not in _DEFAULT_API_BASE:
        raise ConfigError(f"{where}.vendor: must be one of {', '.join(_DEFAULT_API_BASE)}")
    prefix = "ORGSTREAM_TENANT_" + re.sub(r"[^A-Za-z0-9]", "_", tenant_id).upper() + "_"
    secrets = {k: environ.get(prefix + k.upper()) or _opt_str(t, where, k) for k in _TENANT_SECRETS}
    for name, value in secrets.items():
        _refuse_placeholder(value, f"{where}.{name} ({prefix}{name.upper()})")
    key_name = "encoding_aes_key" if vendor == "wecom" else "aes_key"
    token, aes_key = secrets["callback_token"], secrets[key_name] or secrets["encoding_aes_key"]
    previous_key = secrets[f"previous_{key_name}"] or secrets["previous_encoding_aes_key"]
    if not token:
        raise ConfigError(f"{where}.callback_token: required (or {prefix}CALLBACK_TOKEN)")
    if not aes_key:
        raise ConfigError(f"{where}.{key_name}: required (or {prefix}{key_name.upper()})")
    proxy = _opt_str(t, where, "proxy")
    if proxy and not proxy.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.proxy: must be an http:// or https:// proxy URL")
    app_key = _opt_str(t, where, "app_key")
    default_mode = "subscription" if app_key else "legacy"
    mode = _str(t, where, "callback_mode", default_mode)
    if mode not in ("subscription", "legacy"):
        raise ConfigError(f"{where}.callback_mode: must be 'subscription' or 'legacy'")
    if vendor == "dingtalk" and mode == "subscription" and not app_key:
        raise ConfigError(f"{where}.app_key: required when callback_mode is 'subscription'")
    qps = t.get("api_qps", DEFAULT_API_QPS)
    if not isinstance(qps, int | float) or isinstance(qps, bool) or qps <= 0:
        raise ConfigError(f"{where}.api_qps: must be a positive number")
    scim_table = t.get("scim")
    return TenantSettings(
        id=tenant_id,
        vendor=cast(Vendor, vendor),
        corp_id=_str(t, where, "corp_id", None),
        callback_token=Secret(token),
        aes_key=decode_aes_key(aes_key, f"{where}.{key_name}"),
        api_base=_str(t, where, "api_base", _DEFAULT_API_BASE[vendor]).rstrip("/"),
        api_secret=_secret(secrets["api_secret"]),
        app_key=app_key,
        app_secret=_secret(secrets["app_secret"]),
        proxy=proxy,
        scim=_scim(scim_table, f"{where}.scim", None) if isinstance(scim_table, dict) else None,
        callback_mode=cast(CallbackMode, mode),
        api_qps=float(qps),
        previous_callback_token=_secret(secrets["previous_callback_token"]),
        previous_aes_key=(
            decode_aes_key(previous_key, f"{where}.previous_{key_name}") if previous_key else None
        ),
    )


def decode_aes_key(encoding_aes_key: str, where: str = "encoding_aes_key") -> bytes:
    """43 characters of [A-Za-z0-9] + '=' -> the 32-byte AES-256 key
    (docs/vendor-protocols.md §0)."""
    if not _AES_KEY.fullmatch(encoding_aes_key):
        raise ConfigError(f"{where}: must be exactly 43 characters from [A-Za-z0-9]")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"{where}: not a valid key") from exc
    if len(key) != 32:
        raise ConfigError(f"{where}: must decode to 32 bytes")
    return key


def _refuse_placeholder(value: str | None, where: str) -> None:
    if value and any(marker in value.lower() for marker in _PLACEHOLDERS):
        raise ConfigError(f"{where}: still the example value; put the real secret there")


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def _table(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a table ([{name}])")
    return value


def _reject_unknown(t: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in t:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise ConfigError(f"{name}: unknown key")


def _str(t: Mapping[str, Any], where: str, key: str, default: str | None) -> str:
    value = t.get(key, default)
    if value is None:
        raise ConfigError(f"{where}.{key}: required")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: must be a non-empty string")
    return value


def _opt_str(t: Mapping[str, Any], where: str, key: str) -> str | None:
    value = t.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string")
    return value or None


def _int(
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
