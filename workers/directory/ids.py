"""Resource ids of the directory server: derived from the tenant and the vendor's id, so the
same person has the same id across restarts, mirror rebuilds and machines."""

from __future__ import annotations

import uuid
from typing import Final

# A fixed namespace of our own: changing it would change every id a reader has stored.
_NAMESPACE: Final = uuid.UUID("5b0f3c7e-2d51-4a39-9a43-0e7c1d6f8a21")


def user_id(tenant: str, userid: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}:user:{userid}"))


def group_id(tenant: str, department_id: str | str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}:dept:{department_id}"))
