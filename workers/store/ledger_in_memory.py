"""Target ledgers held in this process only: a private one (unit tests, a run without a
store) and a dry run's, which reads the store's ledger and keeps its own writes to itself."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from workers.store.target_ledger import (
    CLAIM_SECONDS,
    WAIT_STEP,
    Claimed,
    Known,
    Resource,
    TargetLedger,
)


@dataclass
class MemoryLedger:
    """A ledger in this process only: unit tests, and the planning overlay of a dry run."""

    rows: dict[str, tuple[str, Known | None, float]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # group id -> member ids
    complete_prefixes: set[str] = field(default_factory=set)

    async def known(self, external_id: str) -> Known | None:
        row = self.rows.get(external_id)
        return row[1] if row else None

    async def remember(self, external_id: str, kind: str, scim_id: str, written: Resource) -> None:
        self.rows[external_id] = (kind, Known(scim_id, written), 0.0)

    async def forget(self, external_id: str) -> None:
        row = self.rows.pop(external_id, None)
        if row and row[1]:
            gone = row[1].scim_id
            self.members.pop(gone, None)
            for held in self.members.values():
                held.discard(gone)

    async def forget_id(self, scim_id: str) -> None:
        for external_id, row in list(self.rows.items()):
            if row[1] is not None and row[1].scim_id == scim_id:
                await self.forget(external_id)
        self.members.pop(scim_id, None)
        for held in self.members.values():
            held.discard(scim_id)

    async def rekey(self, old_external_id: str, new_external_id: str) -> None:
        row = self.rows.pop(old_external_id, None)
        if row is not None:
            self.rows[new_external_id] = row

    async def claim(self, external_id: str, kind: str) -> Claimed:
        row = self.rows.get(external_id)
        if row is not None and (row[1] is not None or row[2] >= time.time()):
            return None
        self.rows[external_id] = (kind, None, time.time() + CLAIM_SECONDS)
        return "fresh" if row is None else "lapsed"

    async def release(self, external_id: str) -> None:
        row = self.rows.get(external_id)
        if row is not None and row[1] is None:
            del self.rows[external_id]

    async def wait_for(self, external_id: str) -> Known | None:
        deadline = time.monotonic() + CLAIM_SECONDS
        while time.monotonic() < deadline:
            row = self.rows.get(external_id)
            if row is None or row[1] is not None or row[2] < time.time():
                return row[1] if row else None
            await asyncio.sleep(WAIT_STEP)
        return None

    async def groups_holding(self, member_id: str) -> set[str]:
        return {group for group, held in self.members.items() if member_id in held}

    async def members_of(self, group_id: str) -> set[str]:
        return set(self.members.get(group_id, ()))

    async def members_changed(self, group_id: str, added: list[str], removed: list[str]) -> None:
        held = self.members.setdefault(group_id, set())
        held.update(added)
        held.difference_update(removed)

    async def complete(self, prefix: str) -> bool:
        return prefix in self.complete_prefixes

    async def count(self, kind: str, prefix: str) -> int:
        return len(await self.under(kind, prefix))

    async def under(self, kind: str, prefix: str) -> dict[str, Known]:
        return {
            external_id: row[1]
            for external_id, row in self.rows.items()
            if row[0] == kind and row[1] is not None and external_id.startswith(prefix)
        }

    async def replace_all(
        self, kind: str, prefix: str, listed: dict[str, Known], members: dict[str, set[str]]
    ) -> None:
        for external_id, entry in listed.items():
            self.rows[external_id] = (kind, entry, 0.0)
        for group_id, member_ids in members.items():
            self.members.setdefault(group_id, set()).update(member_ids)
        self.complete_prefixes.add(prefix)


class PlanningLedger(MemoryLedger):
    """A dry run's ledger: reads the real one, keeps its own writes to itself (the stand-in
    ids of planned creations never reach the store)."""

    def __init__(self, base: TargetLedger) -> None:
        super().__init__()
        self._base = base
        self._forgotten: set[str] = set()

    async def known(self, external_id: str) -> Known | None:
        if external_id in self.rows or external_id in self._forgotten:
            return await super().known(external_id)
        return await self._base.known(external_id)

    async def forget(self, external_id: str) -> None:
        self._forgotten.add(external_id)
        await super().forget(external_id)

    async def claim(self, external_id: str, kind: str) -> Claimed:
        return "fresh"  # nothing is created for real: no one to wait for

    async def groups_holding(self, member_id: str) -> set[str]:
        held = await self._base.groups_holding(member_id)
        planned = {group for group, members in self.members.items() if member_id in members}
        return held | planned

    async def members_of(self, group_id: str) -> set[str]:
        return await self._base.members_of(group_id) | await super().members_of(group_id)

    async def under(self, kind: str, prefix: str) -> dict[str, Known]:
        stored = await self._base.under(kind, prefix)
        mine = await super().under(kind, prefix)
        return {k: v for k, v in {**stored, **mine}.items() if k not in self._forgotten}

    async def count(self, kind: str, prefix: str) -> int:
        return len(await self.under(kind, prefix))
