"""One applier per configured tenant, sharing one HTTP client and one ledger per SCIM target."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Final

import structlog

from schemas.config import ScimSettings, Settings, TenantSettings
from schemas.record import NO_PARENT
from workers.apply.applier import TenantApplier
from workers.apply.guard import DeletionGuard
from workers.apply.mapping import Namespace
from workers.apply.verified import VerifiedLedger
from workers.errors import DependencyMissing, VendorRejected
from workers.scim.pace import Board, TargetPace
from workers.scim.planning import PlanningTarget
from workers.scim.target import ScimTarget
from workers.store.database import Database
from workers.store.ledger_in_memory import MemoryLedger, PlanningLedger
from workers.store.target_ledger import StoredLedger, TargetLedger
from workers.vendors.dingtalk import DingTalkDirectory
from workers.vendors.feishu import ROOT_DEPARTMENT as FEISHU_ROOT
from workers.vendors.feishu import FeishuDirectory
from workers.vendors.source import SourceDepartment, SourceDirectory, SourceUser
from workers.vendors.wecom import WeComDirectory

_DISTINGUISHING: Final = ("tenant", "vendor", "corp_id")
ROOT_DEPARTMENT_ID: Final = "1"  # WeCom's and DingTalk's root department
log = structlog.get_logger("orgstream.worker")


class Appliers:
    def __init__(
        self,
        settings: Settings,
        guard: DeletionGuard | None = None,
        planning: bool = False,
        source_of: Callable[[TenantSettings], SourceDirectory] | None = None,
        ledgers: Database | None = None,
        verify: bool = False,
        board: Board | None = None,
        unmanaged: frozenset[str] = frozenset(),
    ) -> None:
        """`planning`: targets that read but only write down their writes (replay --dry-run).
        `source_of`: where a tenant's entities are read (default: its vendor's API).
        `ledgers`: the store holding the targets' ledgers (private ones if None: tests).
        `verify`: check each ledger id against the target once before trusting it (replay).
        `board`: where the worker processes share each target's pace (this process's alone
        if None). `unmanaged`: user attributes left as the target has them (the feed's
        excluded fields, for appliers that apply records)."""
        self._unmanaged = unmanaged
        self._guard = guard
        self._planning = planning
        self._source_of = source_of or open_vendor_source
        self._ledger_db = ledgers
        self._verify = verify
        self._board = board
        self._paces: dict[str, TargetPace] = {}
        self._targets: dict[tuple[str, str | None], ScimTarget] = {}
        self._ledgers: dict[str, TargetLedger] = {}
        self._sources: list[SourceDirectory] = []
        self._by_tenant = {t.id: self._applier(settings, t) for t in settings.tenants}
        _warn_of_user_name_collisions(settings)

    def for_tenant(self, tenant_id: str) -> TenantApplier | None:
        return self._by_tenant.get(tenant_id)

    def source_for(self, tenant_id: str) -> SourceDirectory | None:
        """The tenant's vendor directory (its API client: token, proxy, pace), as the resolver
        reads it."""
        applier = self._by_tenant.get(tenant_id)
        return None if applier is None else applier.source

    def targets(self) -> list[ScimTarget]:
        return list(self._targets.values())

    async def aclose(self) -> None:
        for target in self._targets.values():
            await target.aclose()
        for source in self._sources:
            await source.aclose()

    def _applier(self, settings: Settings, tenant: TenantSettings) -> TenantApplier:
        scim = settings.scim_for(tenant)
        source = self._source_of(tenant)
        self._sources.append(source)
        return TenantApplier(
            Namespace(
                tenant.vendor,
                tenant.corp_id,
                tenant.id,
                scim.user_name,
                self._unmanaged,
                scim.mapping,
            ),
            scim,
            self._target(scim),
            source,
            self._guard,
            self._ledger(scim),
        )

    def _target(self, scim: ScimSettings) -> ScimTarget:
        token = scim.bearer_token.reveal() if scim.bearer_token else None
        key = (scim.base_url, token)
        if key not in self._targets:
            kind = PlanningTarget if self._planning else ScimTarget
            pace = self._paces.get(scim.base_url)
            if pace is None:  # one per target URL, whichever token a tenant uses on it
                budget = scim.max_requests_per_second
                pace = self._paces[scim.base_url] = TargetPace(scim.base_url, budget, self._board)
            self._targets[key] = kind(scim.base_url, token, scim.timeout_seconds, pace=pace)
        return self._targets[key]

    def _ledger(self, scim: ScimSettings) -> TargetLedger:
        """One ledger per target URL, whichever token each tenant uses on it."""
        base_url = scim.base_url
        if base_url not in self._ledgers:
            db = self._ledger_db
            ledger: TargetLedger = MemoryLedger() if db is None else StoredLedger(db, base_url)
            if self._verify:
                ledger = VerifiedLedger(ledger, self._target(scim))
            # A dry run reads the store's ledger and writes nothing to it.
            self._ledgers[base_url] = PlanningLedger(ledger) if self._planning else ledger
        return self._ledgers[base_url]


def _warn_of_user_name_collisions(settings: Settings) -> None:
    """Tenants of different companies in one target share its userName space: with a template
    that names only the userid, two companies' "zhangsan" collide (409, dead-lettered)."""
    by_target: dict[str, list[TenantSettings]] = defaultdict(list)
    for tenant in settings.tenants:
        by_target[settings.scim_for(tenant).base_url].append(tenant)
    for base_url, tenants in by_target.items():
        template = settings.scim_for(tenants[0]).user_name
        companies = {(t.vendor, t.corp_id) for t in tenants}
        if len(companies) > 1 and not any(f"{{{p}}}" in template for p in _DISTINGUISHING):
            log.warning(
                "user_names_may_collide",
                target=base_url,
                tenants=[t.id for t in tenants],
                hint='set scim.user_name, e.g. "{userid}@{tenant}"',
            )


def open_vendor_source(tenant: TenantSettings) -> SourceDirectory:
    """The tenant's vendor API client: its own proxy, rate and token, shared with nobody."""
    if tenant.vendor == "wecom" and tenant.api_secret is not None:
        return WeComDirectory(
            tenant.api_base,
            tenant.corp_id,
            tenant.api_secret.reveal(),
            proxy=tenant.proxy,
            qps=tenant.api_qps,
        )
    if tenant.vendor == "dingtalk" and tenant.app_key and tenant.app_secret is not None:
        return DingTalkDirectory(
            tenant.api_base,
            tenant.app_key,
            tenant.app_secret.reveal(),
            proxy=tenant.proxy,
            qps=tenant.api_qps,
        )
    if tenant.feishu is not None and tenant.app_secret is not None:
        return FeishuDirectory(
            tenant.api_base,
            tenant.feishu,
            tenant.app_secret.reveal(),
            tenant.id,
            proxy=tenant.proxy,
            qps=tenant.api_qps,
        )
    return _NoApiAccess(tenant.id, FEISHU_ROOT if tenant.vendor == "feishu" else ROOT_DEPARTMENT_ID)


class _NoApiAccess:
    """A tenant without API credentials: complete events apply, id-only ones (all of DingTalk's)
    dead-letter with this reason. A department that is not on the target yet cannot be fetched:
    the event waits (parked) until the department's own event has created it."""

    def __init__(self, tenant_id: str, root: str) -> None:
        self._tenant_id = tenant_id
        self._root = root

    async def get_user(self, userid: str) -> SourceUser | None:
        raise VendorRejected(0, f"tenant {self._tenant_id}: no API credentials configured")

    async def get_department(self, department_id: str) -> SourceDepartment | None:
        if department_id == self._root:
            # No callback ever names the root: without the API its Group bears the tenant id.
            return SourceDepartment(self._root, self._tenant_id, NO_PARENT)
        raise DependencyMissing(
            f"department {department_id} is not on the target yet, and tenant "
            f"{self._tenant_id} has no API credentials to fetch it"
        )

    async def aclose(self) -> None:
        return None
