"""A ledger that checks each id it gives out against the target once: what `orgstream replay`
applies through, since a replay is often the repair after an accident on the target (Users or
Groups deleted by hand), which a ledger trusted as is would not notice."""

from __future__ import annotations

from typing import Any

from workers.errors import ScimRejected
from workers.scim.target import ScimTarget
from workers.store.target_ledger import Known, TargetLedger


class VerifiedLedger:
    def __init__(self, base: TargetLedger, target: ScimTarget) -> None:
        self._base = base
        self._target = target
        self._checked: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)  # everything but `known` as the ledger does it

    async def known(self, external_id: str) -> Known | None:
        known = await self._base.known(external_id)
        if known is None or external_id in self._checked:
            return known
        kind = "Users" if external_id.split(":", 3)[2:3] == ["user"] else "Groups"
        try:
            await self._target.get(kind, known.scim_id)
        except ScimRejected as exc:
            if exc.status != 404:
                raise
            await self._base.forget(external_id)  # gone: found or created again by the caller
            return None
        self._checked.add(external_id)
        return known
