"""The mirror: each tenant's directory as the feed last described it, in the store (SQLite by
default, or PostgreSQL), indexed for the directory server and the console that read it.

Every entity keeps its latest record (a deletion stays as a tombstone, so an older record
that arrives late cannot bring it back), and a user's departments are rows of their own, so
"who is in department 7" is one indexed query. A record older than the one kept is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.record import DepartmentState, DirectoryRecord, UserState, decode_record
from workers.store.database import Database, Statement, open_database
from workers.store.migrations import TextColumn

MIRROR_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS mirror_entities (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    deleted INTEGER NOT NULL,
    name TEXT NOT NULL,
    parent_id TEXT,
    record TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, id)
)""",
    "CREATE INDEX IF NOT EXISTS mirror_entities_parent"
    " ON mirror_entities (tenant, kind, parent_id)",
    "CREATE INDEX IF NOT EXISTS mirror_entities_name ON mirror_entities (tenant, kind, name)",
    """CREATE TABLE IF NOT EXISTS mirror_memberships (
    tenant TEXT NOT NULL,
    userid TEXT NOT NULL,
    department TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (tenant, userid, department)
)""",
    "CREATE INDEX IF NOT EXISTS mirror_memberships_department"
    " ON mirror_memberships (tenant, department)",
)

# Department ids were numbers until Feishu's, which are not; no parent was 0 and is "".
MIRROR_MIGRATIONS: Final = (
    TextColumn("mirror_entities", "parent_id", zero_is=""),
    TextColumn("mirror_memberships", "department"),
)


@dataclass(frozen=True)
class MirroredDirectory:
    """One tenant's directory as mirrored: who and what exists now, and what was deleted."""

    users: tuple[UserState, ...]
    departments: tuple[DepartmentState, ...]
    deleted_users: tuple[str, ...]
    deleted_departments: tuple[str, ...]


class Mirror:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def aclose(self) -> None:
        await self._db.aclose()

    async def apply(self, record: DirectoryRecord, payload: bytes) -> bool:
        """Keep `record` (its encoded `payload`) unless a newer one is kept already; whether
        it was applied."""
        rows = await self._db.fetch(
            "SELECT version FROM mirror_entities WHERE tenant = ? AND kind = ? AND id = ?",
            [record.tenant, record.kind, record.id],
        )
        if rows and not record.supersedes(int(rows[0][0])):
            return False
        name, parent = _indexed(record)
        statements: list[Statement] = [(
            "INSERT INTO mirror_entities"
            " (tenant, kind, id, version, deleted, name, parent_id, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (tenant, kind, id) DO UPDATE SET version = excluded.version,"
            " deleted = excluded.deleted, name = excluded.name,"
            " parent_id = excluded.parent_id, record = excluded.record"
            " WHERE mirror_entities.version <= excluded.version",
            [record.tenant, record.kind, record.id, record.version, int(record.deleted), name,
             parent, payload.decode()],
        )]  # fmt: skip
        if record.kind == "user":
            statements += _membership_statements(record)
        # One transaction (one commit) per record: the mirror shares the store with the
        # worker's history and ledger, and every commit takes the store's one write lock.
        await self._db.transact(statements)
        return True

    async def version(self, tenant: str, kind: str, entity_id: str) -> int | None:
        rows = await self._db.fetch(
            "SELECT version FROM mirror_entities WHERE tenant = ? AND kind = ? AND id = ?",
            [tenant, kind, entity_id],
        )
        return int(rows[0][0]) if rows else None

    async def department(self, tenant: str, department_id: str) -> DepartmentState | None:
        record = await self.record(tenant, "department", str(department_id))
        return None if record is None else record.department

    async def user(self, tenant: str, userid: str) -> UserState | None:
        record = await self.record(tenant, "user", userid)
        return None if record is None else record.user

    async def directory(self, tenant: str) -> MirroredDirectory:
        rows = await self._db.fetch(
            "SELECT record FROM mirror_entities WHERE tenant = ? ORDER BY kind, id", [tenant]
        )
        records = [decode_record(str(row[0]).encode()) for row in rows]
        return MirroredDirectory(
            users=tuple(r.user for r in records if r.user is not None),
            departments=tuple(r.department for r in records if r.department is not None),
            deleted_users=tuple(r.id for r in records if r.deleted and r.kind == "user"),
            deleted_departments=tuple(
                r.id for r in records if r.deleted and r.kind == "department"
            ),
        )

    async def members(self, tenant: str, department_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT userid FROM mirror_memberships WHERE tenant = ? AND department = ?"
            " ORDER BY position, userid",
            [tenant, department_id],
        )
        return [str(row[0]) for row in rows]

    async def children(self, tenant: str, department_id: str) -> list[str]:
        """The departments directly below one (deleted ones excluded)."""
        rows = await self._db.fetch(
            "SELECT id FROM mirror_entities WHERE tenant = ? AND kind = 'department'"
            " AND parent_id = ? AND deleted = 0 ORDER BY id",
            [tenant, department_id],
        )
        return [str(row[0]) for row in rows]

    # ---- what the console reads: names and counts, from the indexes, no record decoded ----

    async def outline(self, tenant: str) -> list[tuple[str, str, str]]:
        """Every department of a tenant as (id, name, parent id), by name."""
        rows = await self._db.fetch(
            "SELECT id, name, parent_id FROM mirror_entities WHERE tenant = ?"
            " AND kind = 'department' AND deleted = 0 ORDER BY name, id",
            [tenant],
        )
        return [(str(r[0]), str(r[1]), str(r[2] or "")) for r in rows]

    async def department_sizes(self, tenant: str) -> dict[str, int]:
        rows = await self._db.fetch(
            "SELECT department, count(*) FROM mirror_memberships WHERE tenant = ?"
            " GROUP BY department",
            [tenant],
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def users(self, tenant: str, userids: list[str]) -> dict[str, UserState]:
        """The kept users among `userids`, in one query (a department's member list)."""
        if not userids:
            return {}
        marks = ", ".join("?" for _ in userids)
        rows = await self._db.fetch(
            f"SELECT record FROM mirror_entities WHERE tenant = ? AND kind = 'user'"  # noqa: S608
            f" AND id IN ({marks})",
            [tenant, *userids],
        )
        records = (decode_record(str(row[0]).encode()) for row in rows)
        return {r.id: r.user for r in records if r.user is not None}

    async def search(self, tenant: str, text: str, limit: int) -> list[tuple[str, str, str]]:
        """Users and departments whose id is `text` or whose name starts with it, as (kind,
        id, name): the primary key, then a range on the (tenant, kind, name) index."""
        found: list[tuple[str, str, str]] = []
        for kind in ("user", "department"):
            exact = await self._db.fetch(
                "SELECT id, name FROM mirror_entities WHERE tenant = ? AND kind = ? AND id = ?"
                " AND deleted = 0",
                [tenant, kind, text],
            )
            named = await self._db.fetch(
                "SELECT id, name FROM mirror_entities WHERE tenant = ? AND kind = ?"
                " AND name >= ? AND deleted = 0 ORDER BY name, id LIMIT ?",
                [tenant, kind, text, limit],
            )
            rows = [*exact, *(r for r in named if str(r[1]).startswith(text) and r[0] != text)]
            found += [(kind, str(r[0]), str(r[1])) for r in rows[:limit]]
        return found

    async def forget(self, tenant: str | None) -> None:
        """Empty the mirror (of one tenant), before a rebuild from the feed."""
        where, params = ("WHERE tenant = ?", [tenant]) if tenant else ("", [])
        await self._db.execute(f"DELETE FROM mirror_memberships {where}", params)  # noqa: S608
        await self._db.execute(f"DELETE FROM mirror_entities {where}", params)  # noqa: S608

    async def record(self, tenant: str, kind: str, entity_id: str) -> DirectoryRecord | None:
        """The record kept for the entity (a deletion's too), or None."""
        rows = await self._db.fetch(
            "SELECT record FROM mirror_entities WHERE tenant = ? AND kind = ? AND id = ?",
            [tenant, kind, entity_id],
        )
        return decode_record(str(rows[0][0]).encode()) if rows else None


def open_mirror(url: str) -> Mirror:
    return Mirror(open_database(url, MIRROR_SCHEMA, MIRROR_MIGRATIONS))


# Each only while this record's version is the one kept: a newer record of the same user,
# written by another sink process between our read and our transaction, keeps its memberships.
_DELETE_MEMBERSHIPS: Final = (
    "DELETE FROM mirror_memberships WHERE tenant = ? AND userid = ?"
    " AND EXISTS (SELECT 1 FROM mirror_entities WHERE tenant = ? AND kind = 'user' AND id = ?"
    " AND version = ?)"
)
_INSERT_MEMBERSHIP: Final = (
    "INSERT INTO mirror_memberships (tenant, userid, department, position)"
    " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM mirror_entities WHERE tenant = ?"
    " AND kind = 'user' AND id = ? AND version = ?)"
    " ON CONFLICT (tenant, userid, department) DO NOTHING"
)


def _membership_statements(record: DirectoryRecord) -> list[Statement]:
    kept = [record.tenant, record.id, record.version]
    statements: list[Statement] = [(_DELETE_MEMBERSHIPS, [record.tenant, record.id, *kept])]
    memberships = [(m.department, m.order) for m in record.user.departments] if record.user else []
    for department, position in memberships:
        statements.append(
            (_INSERT_MEMBERSHIP, [record.tenant, record.id, department, position, *kept])
        )
    return statements


def _indexed(record: DirectoryRecord) -> tuple[str, str | None]:
    """The columns the readers search by: the name, and a department's parent."""
    if record.user is not None:
        return record.user.name, None
    if record.department is not None:
        return record.department.name, record.department.parent_id
    return "", None
