"""`orgstream.toml` -> frozen settings, loaded once at start-up.

Secrets may also come from the environment, which wins over the file:
`ORGSTREAM_SCIM_BEARER_TOKEN`, `ORGSTREAM_STORE_URL` (a PostgreSQL URL may hold a password), and
per tenant `ORGSTREAM_TENANT_<ID>_<KEY>` where `<ID>` is the tenant id upper-cased with every
non-alphanumeric character turned into `_` and `<KEY>` is the upper-cased key name (e.g.
`ORGSTREAM_TENANT_ACME_CALLBACK_TOKEN`). A bad file raises `ConfigError` naming the key; secrets
never appear in reprs or messages.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schemas.config.console import console_settings
from schemas.config.fields import (
    integer,
    refuse_placeholder,
    reject_unknown,
    seconds,
    table,
    text,
)
from schemas.config.model import (
    ConfigError,
    DirectorySettings,
    FeedSettings,
    GuardSettings,
    KafkaSettings,
    ReceiverSettings,
    Settings,
    StoreSettings,
    SyncSettings,
    WorkerSettings,
)
from schemas.config.provisioning import refuse_provisioning_loops
from schemas.config.scope_checks import refuse_scope_and_mapping_conflicts
from schemas.config.tenant import scim_settings, tenant_settings
from schemas.record import USER_TEXT_FIELDS


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
    reject_unknown(
        raw,
        "",
        {
            "kafka",
            "receiver",
            "scim",
            "store",
            "worker",
            "guard",
            "sync",
            "feed",
            "directory",
            "console",
            "tenants",
        },
    )
    scim = scim_settings(table(raw, "scim"), "scim", environ.get("ORGSTREAM_SCIM_BEARER_TOKEN"))
    tenants_raw = raw.get("tenants", [])
    if not isinstance(tenants_raw, list):
        raise ConfigError("tenants: must be an array of tables ([[tenants]])")
    tenants = tuple(tenant_settings(t, f"tenants[{i}]", environ) for i, t in enumerate(tenants_raw))
    seen: set[str] = set()
    for index, tenant in enumerate(tenants):
        if tenant.id in seen:
            raise ConfigError(f"tenants[{index}].id: duplicate tenant id {tenant.id!r}")
        seen.add(tenant.id)
    settings = Settings(
        kafka=_kafka(table(raw, "kafka")),
        receiver=_receiver(table(raw, "receiver")),
        scim=scim,
        store=_store(table(raw, "store"), environ.get("ORGSTREAM_STORE_URL")),
        tenants=tenants,
        worker=_worker(table(raw, "worker")),
        guard=_guard(table(raw, "guard")),
        sync=_sync(table(raw, "sync")),
        feed=_feed(table(raw, "feed")),
        directory=_directory(table(raw, "directory")),
        console=console_settings(table(raw, "console"), environ),
    )
    refuse_provisioning_loops(settings)
    refuse_scope_and_mapping_conflicts(settings)
    return settings


def _directory(t: Mapping[str, Any]) -> DirectorySettings:
    d = DirectorySettings()
    reject_unknown(t, "directory", set(DirectorySettings.__slots__))
    return DirectorySettings(
        host=text(t, "directory", "host", d.host),
        port=integer(t, "directory", "port", d.port, 0, 65535),
        max_results=integer(t, "directory", "max_results", d.max_results, 1, 10_000),
        leaver_days=integer(t, "directory", "leaver_days", d.leaver_days, 0, 3650),
        metrics_host=text(t, "directory", "metrics_host", d.metrics_host),
        metrics_port=integer(t, "directory", "metrics_port", d.metrics_port, 0, 65535),
    )


def _feed(t: Mapping[str, Any]) -> FeedSettings:
    reject_unknown(t, "feed", set(FeedSettings.__slots__))
    excluded = t.get("exclude_fields", [])
    # A mapped field kept off the feed is left alone on the targets (workers/apply/mapping.py):
    # orgstream neither sets nor removes the attribute it feeds.
    allowed = (*USER_TEXT_FIELDS, "custom", "extra")
    if not isinstance(excluded, list) or any(name not in allowed for name in excluded):
        raise ConfigError(f"feed.exclude_fields: a list of {', '.join(allowed)}")
    enabled = t.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError("feed.enabled: true or false")
    mirror_in = t.get("mirror_in", "worker")
    if mirror_in not in ("worker", "directory"):
        raise ConfigError('feed.mirror_in: "worker" or "directory"')
    return FeedSettings(exclude_fields=tuple(excluded), enabled=enabled, mirror_in=mirror_in)


def _kafka(t: Mapping[str, Any]) -> KafkaSettings:
    d = KafkaSettings()
    reject_unknown(t, "kafka", set(KafkaSettings.__slots__))
    return KafkaSettings(
        bootstrap_servers=text(t, "kafka", "bootstrap_servers", d.bootstrap_servers),
        topic=text(t, "kafka", "topic", d.topic),
        dlq_topic=text(t, "kafka", "dlq_topic", d.dlq_topic),
        consumer_group=text(t, "kafka", "consumer_group", d.consumer_group),
        directory_topic=text(t, "kafka", "directory_topic", d.directory_topic),
        session_timeout_ms=integer(t, "kafka", "session_timeout_ms", d.session_timeout_ms, 1000),
        cluster_name=text(t, "kafka", "cluster_name", d.cluster_name),
    )


def _store(t: Mapping[str, Any], env_url: str | None) -> StoreSettings:
    d = StoreSettings()
    reject_unknown(t, "store", set(StoreSettings.__slots__))
    url = env_url or text(t, "store", "url", d.url)
    refuse_placeholder(url, "store.url (ORGSTREAM_STORE_URL)")
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("store.url: must be sqlite:///path or postgresql://…")
    return StoreSettings(
        url=url, retention_days=integer(t, "store", "retention_days", d.retention_days, 1)
    )


def _worker(t: Mapping[str, Any]) -> WorkerSettings:
    d = WorkerSettings()
    reject_unknown(t, "worker", set(WorkerSettings.__slots__))
    return WorkerSettings(
        retries_before_parking=integer(
            t, "worker", "retries_before_parking", d.retries_before_parking, 0, 20
        ),
        redrive_interval_seconds=seconds(
            t, "worker", "redrive_interval_seconds", d.redrive_interval_seconds
        ),
        quarantine_probe_seconds=seconds(
            t, "worker", "quarantine_probe_seconds", d.quarantine_probe_seconds
        ),
        metrics_host=text(t, "worker", "metrics_host", d.metrics_host),
        metrics_port=integer(t, "worker", "metrics_port", d.metrics_port, 0, 65535),
        lag_poll_seconds=seconds(t, "worker", "lag_poll_seconds", d.lag_poll_seconds),
        apply_concurrency=integer(t, "worker", "apply_concurrency", d.apply_concurrency, 1, 256),
    )


def _guard(t: Mapping[str, Any]) -> GuardSettings:
    d = GuardSettings()
    reject_unknown(t, "guard", set(GuardSettings.__slots__))
    enabled = t.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError("guard.enabled: must be true or false")
    percent = t.get("max_deletion_percent", d.max_deletion_percent)
    if not isinstance(percent, int | float) or isinstance(percent, bool) or not 0 < percent <= 100:
        raise ConfigError("guard.max_deletion_percent: must be a number in (0, 100]")
    return GuardSettings(
        enabled=enabled,
        max_deletions=integer(t, "guard", "max_deletions", d.max_deletions, 1),
        max_deletion_percent=float(percent),
        window_minutes=integer(t, "guard", "window_minutes", d.window_minutes, 1),
    )


def _sync(t: Mapping[str, Any]) -> SyncSettings:
    d = SyncSettings()
    reject_unknown(t, "sync", set(SyncSettings.__slots__))
    schedule = t.get("schedule", d.schedule)
    if not isinstance(schedule, bool):
        raise ConfigError("sync.schedule: must be true or false")
    return SyncSettings(
        schedule=schedule,
        interval_minutes=seconds(t, "sync", "interval_minutes", d.interval_minutes, "minutes"),
        failed_callbacks_minutes=seconds(
            t, "sync", "failed_callbacks_minutes", d.failed_callbacks_minutes, "minutes"
        ),
        catch_up_seconds=seconds(t, "sync", "catch_up_seconds", d.catch_up_seconds, "seconds"),
    )


def _receiver(t: Mapping[str, Any]) -> ReceiverSettings:
    d = ReceiverSettings()
    reject_unknown(t, "receiver", set(ReceiverSettings.__slots__))
    timeout = t.get("publish_timeout_seconds", d.publish_timeout_seconds)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout < 5:
        raise ConfigError("receiver.publish_timeout_seconds: must be a number in (0, 5)")
    return ReceiverSettings(
        host=text(t, "receiver", "host", d.host),
        port=integer(t, "receiver", "port", d.port, 0, 65535),
        max_body_bytes=integer(t, "receiver", "max_body_bytes", d.max_body_bytes, 1024),
        timestamp_skew_seconds=integer(
            t, "receiver", "timestamp_skew_seconds", d.timestamp_skew_seconds, 1
        ),
        publish_timeout_seconds=float(timeout),
        metrics_host=text(t, "receiver", "metrics_host", d.metrics_host),
        metrics_port=integer(t, "receiver", "metrics_port", d.metrics_port, 0, 65535),
        body_timeout_seconds=seconds(t, "receiver", "body_timeout_seconds", d.body_timeout_seconds),
        limit_concurrency=integer(t, "receiver", "limit_concurrency", d.limit_concurrency, 1),
        keep_alive_seconds=integer(
            t, "receiver", "keep_alive_seconds", d.keep_alive_seconds, 1, 300
        ),
        workers=integer(t, "receiver", "workers", d.workers, 1, 64),
    )
