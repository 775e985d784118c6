"""The configuration: `orgstream.toml` (and the environment) into frozen settings."""

from schemas.config.loader import load_settings, parse_settings
from schemas.config.model import (
    CONFIG_ENV,
    DEFAULT_API_QPS,
    CallbackKey,
    ConfigError,
    DirectorySettings,
    FeedSettings,
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
from schemas.config.tenant import decode_aes_key

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_API_QPS",
    "CallbackKey",
    "ConfigError",
    "DirectorySettings",
    "FeedSettings",
    "GuardSettings",
    "KafkaSettings",
    "ReceiverSettings",
    "ScimSettings",
    "Secret",
    "Settings",
    "StoreSettings",
    "SyncSettings",
    "TenantSettings",
    "WorkerSettings",
    "decode_aes_key",
    "load_settings",
    "parse_settings",
]
