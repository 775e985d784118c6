"""Each target's attribute mapping checked against what the target says it holds (its
`/Schemas`), once, when the worker or a sync starts: a mapping into an attribute the target does
not have would otherwise fail on every user, one dead letter at a time."""

from __future__ import annotations

import structlog

from schemas.config import ConfigError, Settings
from schemas.mapping.attributes import check_against_schemas
from schemas.mapping.expression import MappingError
from workers.apply.appliers import Appliers
from workers.errors import ScimRejected, ScimUnavailable

log = structlog.get_logger("orgstream.worker")


async def check_mappings(settings: Settings, appliers: Appliers) -> None:
    """Raise `ConfigError` naming the key of the first mapped attribute a target refuses. A
    target without `/Schemas`, or not reachable now, is not checked (a warning says so)."""
    for index, tenant in enumerate(settings.tenants):
        scim = settings.scim_for(tenant)
        applier = appliers.for_tenant(tenant.id)
        if not scim.mapping.attributes or applier is None:
            continue
        try:
            schemas = await applier.target.schemas()
        except (ScimRejected, ScimUnavailable) as exc:
            log.warning("mapping_not_checked", tenant=tenant.id, reason=str(exc))
            continue
        if not schemas:
            log.warning("mapping_not_checked", tenant=tenant.id, reason="/Schemas lists nothing")
            continue
        where = f"tenants[{index}].scim.mapping" if tenant.scim else "scim.mapping"
        try:
            check_against_schemas(scim.mapping, schemas, where)
        except MappingError as exc:
            raise ConfigError(f"{exc} (tenant {tenant.id}, target {scim.base_url})") from None
