"""The handful of named types every package speaks in."""

from __future__ import annotations

from typing import Literal, NewType

TenantId = NewType("TenantId", str)
ExternalId = NewType("ExternalId", str)

Vendor = Literal["wecom", "dingtalk", "feishu"]
Entity = Literal["user", "department"]
Change = Literal["created", "updated", "deleted", "moved", "renamed"]
UserDeletePolicy = Literal["deactivate", "delete"]
DepartmentMode = Literal["auto", "extension", "nested", "flat"]
CallbackMode = Literal["subscription", "legacy"]

VENDORS: tuple[Vendor, ...] = ("wecom", "dingtalk", "feishu")
ENTITIES: tuple[Entity, ...] = ("user", "department")
CHANGES: tuple[Change, ...] = ("created", "updated", "deleted", "moved", "renamed")
