"""What a target's scope and mapping need from the rest of the configuration, checked once the
whole file is read: fields the feed still carries, and a way to read the department tree."""

from __future__ import annotations

from collections.abc import Iterator

from schemas.config.model import ConfigError, ScimSettings, Settings, TenantSettings
from schemas.mapping.attributes import unmanaged_attributes


def refuse_scope_and_mapping_conflicts(settings: Settings) -> None:
    """A scope or mapping that reads a field `[feed] exclude_fields` keeps off the feed would
    find it empty on every record: a scope would deprovision everyone, a mapping remove what
    the target holds. A mapping onto an attribute the exclusion leaves to the target would undo
    that promise. And a scope of subtrees needs the tree: from the mirror, else the vendor."""
    if settings.feed.enabled:
        excluded = set(settings.feed.exclude_fields)
        if excluded & {"email", "biz_mail"}:  # one address stands for the other
            excluded |= {"email", "biz_mail"}
        unmanaged = unmanaged_attributes(excluded)
        for where, scim in _targets(settings):
            _refuse_excluded_reads(where, scim, excluded, unmanaged)
        return
    for index, tenant in enumerate(settings.tenants):
        scope = settings.scim_for(tenant).scope
        if scope.by_departments and not has_api_access(tenant):
            raise ConfigError(
                f"tenants[{index}]: its target's scope chooses departments, which needs the "
                "department tree: give the tenant API credentials, or turn on [feed]"
            )


def has_api_access(tenant: TenantSettings) -> bool:
    """Whether the tenant can read its vendor's directory (as `open_vendor_source` decides)."""
    if tenant.vendor == "wecom":
        return tenant.api_secret is not None
    if tenant.vendor == "dingtalk":
        return bool(tenant.app_key) and tenant.app_secret is not None
    return tenant.feishu is not None and tenant.app_secret is not None


def _targets(settings: Settings) -> Iterator[tuple[str, ScimSettings]]:
    yield "scim", settings.scim
    for index, tenant in enumerate(settings.tenants):
        if tenant.scim is not None:
            yield f"tenants[{index}].scim", tenant.scim


def _refuse_excluded_reads(
    where: str, scim: ScimSettings, excluded: set[str], unmanaged: frozenset[str]
) -> None:
    reads = [(f"{where}.scope.users.{name}", name) for name in scim.scope.users]
    for mapped in scim.mapping.attributes:
        key = f"{where}.mapping.{mapped.key}"
        reads += [(key, field) for field in sorted(mapped.expression.fields)]
        if mapped.patch_path in unmanaged:
            raise ConfigError(
                f"{key}: [feed] exclude_fields leaves {mapped.patch_path} to the target"
            )
    for key, field in reads:
        if (field.partition(".")[0] if field.startswith("custom.") else field) in excluded:
            raise ConfigError(f"{key}: reads {field}, which [feed] exclude_fields keeps off")
