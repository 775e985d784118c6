"""A tenant's provisioning keys: SCIM writes into WeCom or DingTalk (docs/provisioning.md).

Off unless `provisioning = true`. Then the tenant needs a token that may write (never the same
as its read-only `directory_token`) and the vendor's write credentials: WeCom's contact-sync
secret (`sync_secret`; an app secret cannot write), DingTalk's app key and secret (an app with
the contact-maintenance permission). Feishu is not written to yet, and says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from schemas.config.fields import optional_text
from schemas.config.model import ConfigError, ProvisioningSettings, Secret, Settings

PROVISIONING_KEYS: Final = frozenset(
    {"provisioning", "provisioning_userid", "provisioning_department_prefix"}
    | {"provisioning_source", "provisioning_source_minutes"}
)
PROVISIONING_SECRETS: Final = ("provisioning_token", "sync_secret", "provisioning_source_token")
USERID_PLACEHOLDERS: Final = ("{userName}", "{userName_local}", "{externalId}")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def provisioning_settings(
    t: Mapping[str, Any],
    where: str,
    vendor: str,
    secrets: Mapping[str, str | None],
    prefix: str,
) -> ProvisioningSettings | None:
    enabled = t.get("provisioning", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.provisioning: must be true or false")
    if not enabled:
        return None
    if vendor == "feishu":
        raise ConfigError(f"{where}.provisioning: writing into feishu is not supported yet")
    source_url = optional_text(t, where, "provisioning_source")
    if source_url is not None and not source_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.provisioning_source: the SCIM base URL to pull from, http(s)")
    token = secrets["provisioning_token"]
    if not token:
        raise ConfigError(
            f"{where}.provisioning_token: required with provisioning = true "
            f"(or {prefix}PROVISIONING_TOKEN)"
        )
    if token == secrets.get("directory_token"):
        raise ConfigError(
            f"{where}.provisioning_token: must differ from directory_token, which only reads"
        )
    sync_secret = secrets["sync_secret"]
    if vendor == "dingtalk" and not (t.get("app_key") and secrets.get("app_secret")):
        raise ConfigError(
            f"{where}.app_key: provisioning into DingTalk needs app_key and app_secret of an app "
            "with the contact-maintenance permission"
        )
    if vendor == "wecom" and not sync_secret:
        raise ConfigError(
            f"{where}.sync_secret: required with provisioning = true: WeCom writes only with "
            f"the contact-sync (通讯录同步) secret (or {prefix}SYNC_SECRET)"
        )
    userid = optional_text(t, where, "provisioning_userid") or "{userName}"
    unknown = [p for p in _PLACEHOLDER.findall(userid) if p not in USERID_PLACEHOLDERS]
    if (
        unknown
        or not _PLACEHOLDER.search(userid)
        or re.search(r"[{}]", _PLACEHOLDER.sub("", userid))
    ):
        raise ConfigError(
            f"{where}.provisioning_userid: a template of {', '.join(USERID_PLACEHOLDERS)}"
            + (f"; {unknown[0]} is none of them" if unknown else "")
        )
    source_token = secrets["provisioning_source_token"]
    minutes = t.get("provisioning_source_minutes", 60)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes < 0:
        raise ConfigError(f"{where}.provisioning_source_minutes: minutes >= 0 (0: on command only)")
    return ProvisioningSettings(
        source_url=source_url.rstrip("/") if source_url else None,
        source_token=Secret(source_token) if source_token else None,
        source_minutes=float(minutes),
        token=Secret(token),
        sync_secret=Secret(sync_secret) if sync_secret else None,
        userid=userid,
        department_prefix=optional_text(t, where, "provisioning_department_prefix") or "",
    )


def refuse_provisioning_loops(settings: Settings) -> None:
    """A tenant whose SCIM target is its own provisioning URL would write every vendor change
    back into the vendor, which calls back, forever."""
    for index, tenant in enumerate(settings.tenants):
        if tenant.provisioning is None:
            continue
        base_url = settings.scim_for(tenant).base_url.rstrip("/")
        target = urlsplit(base_url).path.rstrip("/")
        if tenant.provisioning.source_url == base_url:
            raise ConfigError(
                f"tenants[{index}].provisioning_source: is the tenant's own SCIM target; what "
                "orgstream writes there from the vendor would be pulled back into the vendor, "
                "without end. Pull from the IdP, not from the target"
            )
        if target.endswith(f"/scim/v2/{tenant.id}"):
            where = f"tenants[{index}].scim" if tenant.scim else "scim"
            raise ConfigError(
                f"{where}.base_url: is the provisioning URL of tenant {tenant.id!r}; its vendor "
                "changes would be written back into the vendor, which calls back, without end. "
                "Point the tenant's SCIM target elsewhere, or turn provisioning off"
            )
