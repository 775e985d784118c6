"""Writes to a tenant's SCIM URLs, for the provisioning path to carry out (workers/provision/):
the server authenticates them and reads the body; what a write means is not its business."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import Response


@dataclass(frozen=True, slots=True)
class WriteRequest:
    method: str  # POST, PUT, PATCH or DELETE
    endpoint: str  # "Users" or "Groups"
    scim_id: str | None  # None: the collection
    body: dict[str, Any]
    base: str  # the tenant's SCIM base URL, for `meta.location`


class Writes(Protocol):
    async def write(self, request: WriteRequest) -> Response: ...
