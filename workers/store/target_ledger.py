"""What orgstream wrote to each SCIM target: every externalId's SCIM id, the attributes last
written to it, and the Group memberships orgstream owns (docs/scim-targets.md, "The ledger").

The SCIM sink asks this ledger instead of the target: a record that maps to what was last
written costs no request, and no membership is ever read back (most targets cannot filter on
`members`, and some return no members at all). The target only answers what the ledger does not
know: one `eq` lookup when an externalId is new to the ledger (adopting what is already there),
or when a ledger id turns out to be gone (404).

Creations are claimed first, so two processes never POST the same externalId: the winner
creates, the others wait for its id. A claim expires (a creator that died), and the next one
to claim finds the resource by its externalId if the POST got through.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import orjson

from workers.store.database import Database, open_database

TARGET_LEDGER_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS scim_ledger (
    target TEXT NOT NULL,
    external_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    scim_id TEXT,
    written TEXT,
    claimed_until DOUBLE PRECISION,
    PRIMARY KEY (target, external_id)
)""",
    """CREATE TABLE IF NOT EXISTS scim_ledger_members (
    target TEXT NOT NULL,
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (target, group_id, member_id)
)""",
    "CREATE INDEX IF NOT EXISTS scim_ledger_member ON scim_ledger_members (target, member_id)",
    """CREATE TABLE IF NOT EXISTS scim_ledger_complete (
    target TEXT NOT NULL,
    prefix TEXT NOT NULL,
    PRIMARY KEY (target, prefix)
)""",
)
CLAIM_SECONDS: Final = 30.0  # longer than a POST with its retries takes
WAIT_STEP: Final = 0.05
_FORGET_MEMBERSHIPS: Final = (
    "DELETE FROM scim_ledger_members WHERE target = ? AND (group_id = ? OR member_id = ?)"
)

Resource = dict[str, Any]
# What `claim` got: a claim nobody held ("fresh"), or one whose holder died or gave up
# ("lapsed": its POST may have got through, so look before creating); None: not claimed.
Claimed = Literal["fresh", "lapsed"] | None


@dataclass(frozen=True)
class Known:
    """A resource the ledger knows: its SCIM id and our attributes as last written."""

    scim_id: str
    written: Resource


class TargetLedger(Protocol):
    """One SCIM target's ledger (a target is shared by every tenant that names it)."""

    async def known(self, external_id: str) -> Known | None: ...

    async def remember(self, external_id: str, kind: str, scim_id: str, written: Resource) -> None:
        """Record (or replace) the resource and what it now holds of ours; ends any claim."""
        ...

    async def forget(self, external_id: str) -> None:
        """The resource is gone: its row and every membership that names its id."""
        ...

    async def forget_id(self, scim_id: str) -> None:
        """The same, for a resource known by its SCIM id (a Group a PATCH found gone)."""
        ...

    async def rekey(self, old_external_id: str, new_external_id: str) -> None:
        """The resource now bears another externalId (a WeCom userid change); its id and
        memberships stay."""
        ...

    async def claim(self, external_id: str, kind: str) -> Claimed:
        """Whether this caller may create the resource now (None: another holds a live claim,
        or the ledger already knows it)."""
        ...

    async def release(self, external_id: str) -> None:
        """Give a claim up (the POST failed) without recording anything."""
        ...

    async def wait_for(self, external_id: str) -> Known | None:
        """Wait while another claimer creates the resource: its id, or None once the claim
        has lapsed (the claimer gave up or died); never longer than a claim lasts."""
        ...

    async def groups_holding(self, member_id: str) -> set[str]: ...

    async def members_of(self, group_id: str) -> set[str]: ...

    async def members_changed(
        self, group_id: str, added: list[str], removed: list[str]
    ) -> None: ...

    async def complete(self, prefix: str) -> bool:
        """Whether the ledger holds every resource under `prefix` on the target (a reconcile
        listed them all): an externalId it does not know is then new, and created without a
        lookup first."""
        ...

    async def count(self, kind: str, prefix: str) -> int:
        """Resources of `kind` whose externalId starts with `prefix` (a tenant's footprint)."""
        ...

    async def under(self, kind: str, prefix: str) -> dict[str, Known]:
        """Every known resource of `kind` whose externalId starts with `prefix`."""
        ...

    async def replace_all(
        self, kind: str, prefix: str, listed: dict[str, Known], members: dict[str, set[str]]
    ) -> None:
        """The target as just listed in full (the reconcile): every listed resource and
        membership is known from now on, and the prefix is `complete`. Nothing is forgotten
        here: a worker may have written after the listing was read (a resource really gone
        answers 404 to its next write, which forgets it)."""
        ...


class StoredLedger:
    """The ledger in the store, shared by every worker process of the deployment."""

    def __init__(self, db: Database, target: str) -> None:
        self._db = db
        self._target = target
        self._complete: set[str] = set()

    async def known(self, external_id: str) -> Known | None:
        rows = await self._db.fetch(
            "SELECT scim_id, written FROM scim_ledger WHERE target = ? AND external_id = ?",
            [self._target, external_id],
        )
        if not rows or rows[0][0] is None:
            return None
        return Known(str(rows[0][0]), orjson.loads(rows[0][1] or "{}"))

    async def remember(self, external_id: str, kind: str, scim_id: str, written: Resource) -> None:
        await self._db.execute(
            """INSERT INTO scim_ledger (target, external_id, kind, scim_id, written)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (target, external_id) DO UPDATE SET kind = excluded.kind,
            scim_id = excluded.scim_id, written = excluded.written, claimed_until = NULL""",
            [self._target, external_id, kind, scim_id, orjson.dumps(written).decode()],
        )

    async def forget(self, external_id: str) -> None:
        rows = await self._db.fetch(
            "SELECT scim_id FROM scim_ledger WHERE target = ? AND external_id = ?",
            [self._target, external_id],
        )
        await self._db.execute(
            "DELETE FROM scim_ledger WHERE target = ? AND external_id = ?",
            [self._target, external_id],
        )
        if rows and rows[0][0] is not None:
            await self._db.execute(_FORGET_MEMBERSHIPS, [self._target, rows[0][0], rows[0][0]])

    async def forget_id(self, scim_id: str) -> None:
        await self._db.execute(
            "DELETE FROM scim_ledger WHERE target = ? AND scim_id = ?", [self._target, scim_id]
        )
        await self._db.execute(_FORGET_MEMBERSHIPS, [self._target, scim_id, scim_id])

    async def rekey(self, old_external_id: str, new_external_id: str) -> None:
        await self._db.execute(
            "DELETE FROM scim_ledger WHERE target = ? AND external_id = ?",
            [self._target, new_external_id],
        )
        await self._db.execute(
            "UPDATE scim_ledger SET external_id = ? WHERE target = ? AND external_id = ?",
            [new_external_id, self._target, old_external_id],
        )

    async def claim(self, external_id: str, kind: str) -> Claimed:
        now = time.time()
        claimed = await self._db.execute(
            """INSERT INTO scim_ledger (target, external_id, kind, claimed_until)
            VALUES (?, ?, ?, ?) ON CONFLICT (target, external_id) DO NOTHING""",
            [self._target, external_id, kind, now + CLAIM_SECONDS],
        )
        if claimed:
            return "fresh"
        # A lapsed claim (its creator died or gave up) may be taken over.
        taken = await self._db.execute(
            """UPDATE scim_ledger SET claimed_until = ? WHERE target = ? AND external_id = ?
            AND scim_id IS NULL AND (claimed_until IS NULL OR claimed_until < ?)""",
            [now + CLAIM_SECONDS, self._target, external_id, now],
        )
        return "lapsed" if taken == 1 else None

    async def release(self, external_id: str) -> None:
        await self._db.execute(
            "DELETE FROM scim_ledger WHERE target = ? AND external_id = ? AND scim_id IS NULL",
            [self._target, external_id],
        )

    async def wait_for(self, external_id: str) -> Known | None:
        deadline = time.monotonic() + CLAIM_SECONDS
        while time.monotonic() < deadline:
            rows = await self._db.fetch(
                """SELECT scim_id, written, claimed_until FROM scim_ledger
                WHERE target = ? AND external_id = ?""",
                [self._target, external_id],
            )
            if not rows:
                return None  # released
            scim_id, written, until = rows[0]
            if scim_id is not None:
                return Known(str(scim_id), orjson.loads(written or "{}"))
            if until is None or float(until) < time.time():
                return None  # lapsed
            await asyncio.sleep(WAIT_STEP)
        return None

    async def groups_holding(self, member_id: str) -> set[str]:
        rows = await self._db.fetch(
            "SELECT group_id FROM scim_ledger_members WHERE target = ? AND member_id = ?",
            [self._target, member_id],
        )
        return {str(row[0]) for row in rows}

    async def members_of(self, group_id: str) -> set[str]:
        rows = await self._db.fetch(
            "SELECT member_id FROM scim_ledger_members WHERE target = ? AND group_id = ?",
            [self._target, group_id],
        )
        return {str(row[0]) for row in rows}

    async def members_changed(self, group_id: str, added: list[str], removed: list[str]) -> None:
        for member_id in added:
            await self._db.execute(
                """INSERT INTO scim_ledger_members (target, group_id, member_id) VALUES (?, ?, ?)
                ON CONFLICT (target, group_id, member_id) DO NOTHING""",
                [self._target, group_id, member_id],
            )
        for member_id in removed:
            await self._db.execute(
                """DELETE FROM scim_ledger_members
                WHERE target = ? AND group_id = ? AND member_id = ?""",
                [self._target, group_id, member_id],
            )

    async def complete(self, prefix: str) -> bool:
        if prefix not in self._complete:
            rows = await self._db.fetch(
                "SELECT 1 FROM scim_ledger_complete WHERE target = ? AND prefix = ?",
                [self._target, prefix],
            )
            if not rows:
                return False
            self._complete.add(prefix)  # never undone: cached for the process
        return True

    async def count(self, kind: str, prefix: str) -> int:
        rows = await self._db.fetch(
            """SELECT count(*) FROM scim_ledger WHERE target = ? AND kind = ?
            AND scim_id IS NOT NULL AND substr(external_id, 1, ?) = ?""",
            [self._target, kind, len(prefix), prefix],
        )
        return int(rows[0][0])

    async def under(self, kind: str, prefix: str) -> dict[str, Known]:
        rows = await self._db.fetch(
            """SELECT external_id, scim_id, written FROM scim_ledger WHERE target = ?
            AND kind = ? AND scim_id IS NOT NULL AND substr(external_id, 1, ?) = ?""",
            [self._target, kind, len(prefix), prefix],
        )
        return {str(r[0]): Known(str(r[1]), orjson.loads(r[2] or "{}")) for r in rows}

    async def replace_all(
        self, kind: str, prefix: str, listed: dict[str, Known], members: dict[str, set[str]]
    ) -> None:
        before = await self.under(kind, prefix)
        for external_id, entry in listed.items():
            if before.get(external_id) != entry:
                await self.remember(external_id, kind, entry.scim_id, entry.written)
        for group_id, member_ids in members.items():
            held = await self.members_of(group_id)
            await self.members_changed(group_id, sorted(member_ids - held), [])
        await self._db.execute(
            """INSERT INTO scim_ledger_complete (target, prefix) VALUES (?, ?)
            ON CONFLICT (target, prefix) DO NOTHING""",
            [self._target, prefix],
        )


def open_ledger_database(url: str) -> Database:
    return open_database(url, TARGET_LEDGER_SCHEMA)
