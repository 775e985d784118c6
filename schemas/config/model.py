"""The configuration as the code sees it: frozen settings, built once by `loader.py`.

Secrets are `Secret`s, which never show themselves in a repr, a log line or a traceback.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Final, Literal

from schemas.mapping.attributes import AttributeMapping
from schemas.mapping.scope import Scope
from schemas.topics import (
    DEFAULT_CONSUMER_GROUP,
    DEFAULT_DIRECTORY_TOPIC,
    DEFAULT_DLQ_TOPIC,
    DEFAULT_TOPIC,
    dead_letter_topic,
)
from schemas.types import CallbackMode, DepartmentMode, UserDeletePolicy, Vendor

CONFIG_ENV: Final = "ORGSTREAM_CONFIG"
# DingTalk's smallest edition allows 20 QPS per app (docs/vendors.md §2.6); WeCom
# allows more.
DEFAULT_API_QPS: Final = 20.0


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the offending key."""


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = DEFAULT_TOPIC
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    consumer_group: str = DEFAULT_CONSUMER_GROUP
    # The directory feed: complete records, compacted (docs/design.md, topics).
    directory_topic: str = DEFAULT_DIRECTORY_TOPIC
    session_timeout_ms: int = 10_000
    cluster_name: str = "default"  # the `cluster_name` label of the lag metrics

    @property
    def resolver_group(self) -> str:
        """The resolver's consumer group (on `topic`)."""
        return f"{self.consumer_group}-resolver"

    @property
    def mirror_group(self) -> str:
        """The mirror's consumer group (on `directory_topic`)."""
        return f"{self.consumer_group}-mirror"

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic the stages of this configuration use, dead-letter topics included."""
        return (
            self.topic,
            self.dlq_topic,
            self.directory_topic,
            dead_letter_topic(self.topic, self.resolver_group),
            dead_letter_topic(self.directory_topic, self.mirror_group),
            dead_letter_topic(self.directory_topic, self.consumer_group),
        )


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 262_144
    timestamp_skew_seconds: int = 300
    # Under WeCom's 5 s reply window, with room for the network.
    publish_timeout_seconds: float = 3.0
    # /metrics on a port of its own, never the one the vendors reach (0 turns it off).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9465
    # A body must have arrived this long after the request began, or it is answered 408.
    body_timeout_seconds: float = 10.0
    # uvicorn: connections served at once (beyond that, 503), and how long an idle
    # keep-alive connection stays open.
    limit_concurrency: int = 1000
    keep_alive_seconds: int = 5
    # Processes serving the callback port (SO_REUSEPORT); metrics are summed across them.
    workers: int = 1


@dataclass(frozen=True, slots=True)
class ScimSettings:
    base_url: str = "http://127.0.0.1:8000/v2"
    bearer_token: Secret | None = None
    user_delete: UserDeletePolicy = "deactivate"
    department_mode: DepartmentMode = "auto"
    timeout_seconds: float = 10.0
    # userName template; placeholders {userid}, {tenant}, {vendor}, {corp_id}. Tenants of
    # different companies sharing one target need one that tells them apart.
    user_name: str = "{userid}"
    # The target's request budget, shared by every worker process (0: no limit but its 429s).
    max_requests_per_second: float = 0.0
    # Which departments and users this target gets, and what feeds its User attributes
    # (docs/mapping.md): everything, with the default mapping, unless configured.
    scope: Scope = field(default_factory=Scope)
    mapping: AttributeMapping = field(default_factory=AttributeMapping)

    @property
    def reads_custom(self) -> bool:
        """Whether this target's mapping or scope reads a vendor custom field, which callbacks
        never carry: such a user is read at the vendor, not taken from a callback."""
        return self.mapping.reads_custom or self.scope.reads_custom


@dataclass(frozen=True, slots=True)
class StoreSettings:
    # A PostgreSQL URL may carry a password: kept out of reprs, and settable from the environment.
    url: str = field(default="sqlite:///orgstream.db", repr=False)
    retention_days: int = 30  # sync history older than this is pruned


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    # A transient failure (target 5xx, vendor throttling) is retried in place this many times,
    # then the event is parked and re-driven later, so the partition keeps moving.
    retries_before_parking: int = 3
    redrive_interval_seconds: float = 5.0  # how often parked events are looked at
    quarantine_probe_seconds: float = 10.0  # how often a quarantined SCIM target is probed
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # Prometheus /metrics of the worker; 0 turns it off
    lag_poll_seconds: float = 30.0  # how often the worker measures the group's lag
    # Entities of one tenant applied side by side (one entity's events stay in order).
    apply_concurrency: int = 8


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    """`orgstream directory`: the mirror served as a SCIM 2.0 service provider
    (docs/directory-server.md)."""

    host: str = "127.0.0.1"
    port: int = 8090
    # The most resources one page holds, whatever `count` asks for.
    max_results: int = 1000
    # A leaver stays readable (active=false, in no Group) this long after the deletion.
    leaver_days: int = 30
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9466  # Prometheus /metrics of the directory server; 0 turns it off


ConsoleRole = Literal["viewer", "operator"]


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """One person who may log in to the console: the audit trail records `name`."""

    name: str
    role: ConsoleRole
    token: Secret


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """`orgstream console` (docs/console.md)."""

    host: str = "127.0.0.1"
    port: int = 8070
    session_minutes: int = 480  # a login lasts a working day
    # The session cookie only over HTTPS, also when a proxy in front terminates TLS.
    secure_cookies: bool = False
    # Where browsers reach the console (https://console.example.com) when a proxy sits in
    # front; a login posted from any other origin is refused. Empty: the console's own address.
    public_origin: str = ""
    # How often the console samples lag and throughput for its charts.
    sample_seconds: int = 60
    # Every worker's /metrics (freshness, quarantine); none: the one at worker.metrics_port.
    worker_metrics: tuple[str, ...] = ()
    users: tuple[ConsoleUser, ...] = ()


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """The mass-deletion guard (workers/guard.py)."""

    enabled: bool = True
    max_deletions: int = 50  # deactivations + deletions per tenant within the window
    max_deletion_percent: float = 20.0  # of the tenant's users on the target
    window_minutes: int = 60


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Full syncs the worker runs on its own (workers/schedule.py)."""

    schedule: bool = True
    # WeCom sends no department renames at all any more: the daily full sync picks them up.
    interval_minutes: float = 1440.0
    # DingTalk keeps the callbacks it could not deliver; read them back this often.
    failed_callbacks_minutes: float = 10.0
    # With the feed on, how long a sync waits for the resolver, the mirror and the SCIM sink
    # to take in the records it published before it reconciles the target with the mirror.
    catch_up_seconds: float = 900.0


MirrorHost = Literal["worker", "directory"]


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """The directory feed: whether the worker runs its resolver and mirror stages, and what the
    feed carries: `exclude_fields` keeps personal fields out of it (of
    `title`, `email`, `biz_mail`, `mobile`, `telephone`, `alias`, and `custom`, `extra`), for
    companies whose policy keeps them off a shared topic."""

    exclude_fields: tuple[str, ...] = ()
    # The resolver and the mirror run in `orgstream worker` (their own consumer groups).
    enabled: bool = False
    # Which process keeps the mirror and the directory index: "worker", or "directory" (the
    # `orgstream directory` process, so that a busy worker does not delay what it serves).
    mirror_in: MirrorHost = "worker"


@dataclass(frozen=True, slots=True)
class CallbackKey:
    """A callback token and the AES key that goes with it (the vendor console makes both at
    once, so a request signed with one token is encrypted with its key)."""

    token: Secret
    aes_key: bytes

    def __repr__(self) -> str:
        return "CallbackKey(**********)"


UserIdType = Literal["user_id", "open_id", "union_id"]
DepartmentIdType = Literal["department_id", "open_department_id"]
USER_ID_TYPES: Final[tuple[UserIdType, ...]] = ("user_id", "open_id", "union_id")
DEPARTMENT_ID_TYPES: Final[tuple[DepartmentIdType, ...]] = ("department_id", "open_department_id")


@dataclass(frozen=True, slots=True)
class FeishuApp:
    """A Feishu self-built app as a tenant of ours. `user_id` and `department_id` are the
    defaults: they are the company's own ids, the same in every app, where `open_id` and
    `open_department_id` change from one app to another."""

    app_id: str
    tenant_key: str
    verification_token: Secret
    # None: Feishu sends plaintext events and only the verification token authenticates them.
    encrypt_key: Secret | None = None
    user_id_type: UserIdType = "user_id"
    department_id_type: DepartmentIdType = "department_id"
    # Feishu sends the URL-verification challenge unsigned; once the URL is saved, nothing
    # unsigned needs decrypting, and false refuses it unread.
    accept_unsigned_challenge: bool = True

    def __repr__(self) -> str:
        return f"FeishuApp(app_id={self.app_id!r}, tenant_key={self.tenant_key!r})"

    @property
    def aes_key(self) -> bytes | None:
        """The AES-256 key: SHA-256 of the encrypt key, None without one."""
        return None if self.encrypt_key is None else _sha256(self.encrypt_key.reveal())


@functools.lru_cache(maxsize=256)
def _sha256(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode()).digest()


@dataclass(frozen=True, slots=True)
class ProvisioningSettings:
    """SCIM writes into the vendor (`provisioning = true`, docs/provisioning.md)."""

    token: Secret  # bearer token that may write; the directory_token stays read-only
    sync_secret: Secret | None = None  # WeCom: the contact-sync secret, the only one that writes
    # How a userid is made of what the IdP sends: {userName}, {userName_local}, {externalId}.
    userid: str = "{userName}"
    # Which Groups are departments: those whose displayName starts with this (stripped);
    # every Group when empty. Other Groups are refused with a 400 naming the rule.
    department_prefix: str = ""
    # The pull mode: a SCIM server orgstream makes the vendor equal to (`orgstream sync
    # --to-vendor`), with its bearer token.
    source_url: str | None = None
    source_token: Secret | None = None
    source_minutes: float = 60.0  # `orgstream directory` pulls this often; 0: only on command

    def __repr__(self) -> str:
        return f"ProvisioningSettings(userid={self.userid!r}, source_url={self.source_url!r})"


@dataclass(frozen=True, slots=True)
class TenantSettings:
    id: str
    vendor: Vendor
    corp_id: str
    callback_token: Secret
    aes_key: bytes  # decoded 32-byte key; kept out of reprs below
    api_base: str
    api_secret: Secret | None = None  # WeCom app / contact-sync secret
    app_key: str | None = None  # DingTalk
    app_secret: Secret | None = None  # DingTalk
    proxy: str | None = None
    scim: ScimSettings | None = None
    # DingTalk: "subscription" (event subscription, receive id = app_key) or "legacy"
    # (register_call_back, receive id = corp_id). WeCom tenants always use the corp id.
    callback_mode: CallbackMode = "subscription"
    api_qps: float = DEFAULT_API_QPS  # vendor API calls per second, shared by the tenant's calls
    # Key rotation: the token and key being replaced, accepted beside the current ones until
    # they are removed from the configuration.
    previous_callback_token: Secret | None = None
    previous_aes_key: bytes | None = None
    # Bearer token of the tenant's read-only SCIM directory; None: the directory is closed.
    directory_token: Secret | None = None
    # Feishu tenants: the app (their callback_token is its verification token, aes_key unused).
    feishu: FeishuApp | None = None
    # SCIM writes into the vendor; None: the tenant's SCIM URLs are read-only.
    provisioning: ProvisioningSettings | None = None

    def __repr__(self) -> str:
        return f"TenantSettings(id={self.id!r}, vendor={self.vendor!r}, corp_id={self.corp_id!r})"

    def callback_keys(self) -> tuple[CallbackKey, ...]:
        """The current token and key, then the previous ones while a rotation lasts (a
        previous token alone pairs with the current key, and the other way round)."""
        current = CallbackKey(self.callback_token, self.aes_key)
        if self.previous_callback_token is None and self.previous_aes_key is None:
            return (current,)
        previous = CallbackKey(
            self.previous_callback_token or self.callback_token,
            self.previous_aes_key or self.aes_key,
        )
        return (current, previous)

    @property
    def receive_id(self) -> str:
        """The id the vendor appends to every plaintext (corp id; DingTalk apps: app key)."""
        if self.vendor == "dingtalk" and self.callback_mode == "subscription" and self.app_key:
            return self.app_key
        return self.corp_id


@dataclass(frozen=True, slots=True)
class Settings:
    kafka: KafkaSettings
    receiver: ReceiverSettings
    scim: ScimSettings
    store: StoreSettings
    tenants: tuple[TenantSettings, ...]
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    guard: GuardSettings = field(default_factory=GuardSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    feed: FeedSettings = field(default_factory=FeedSettings)
    directory: DirectorySettings = field(default_factory=DirectorySettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    def tenant(self, tenant_id: str) -> TenantSettings | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

    def scim_for(self, tenant: TenantSettings) -> ScimSettings:
        return tenant.scim or self.scim
