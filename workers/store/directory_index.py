"""The directory server's index: each tenant's users and departments as SCIM resources, and
every attribute a filter may name as rows of its own, so that a filter becomes indexed SQL
(workers/directory/filters.py) rather than a scan.

`directory_resources` keeps one row per resource: the body as JSON without `meta` (its dates,
revision and position are columns) and without a Group's `members`, which are rows of
`directory_values` (path `members.value`, one element per user) kept by the user's side, so a
hire touches the user and the Groups it joins, never a Group's whole member list.

`directory_values` holds, per resource, `(path, element, value, folded, number)`: the path in
lower case (`emails.value`, `urn:…:user:department`), the element that ties the sub-attributes
of one multi-valued item together (`emails[type eq "work" and value co "@x"]`), the value as
written and lower-cased (the case rules of each attribute pick one), and a number for numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from workers.store.database import Database, Row, Statement, open_database

DIRECTORY_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS directory_resources (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    scim_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    created TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    revision BIGINT NOT NULL,
    display TEXT NOT NULL,
    deleted_at TEXT,
    resource TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, source_id)
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS directory_resources_id"
    " ON directory_resources (tenant, kind, scim_id)",
    "CREATE INDEX IF NOT EXISTS directory_resources_position"
    " ON directory_resources (tenant, kind, position)",
    "CREATE INDEX IF NOT EXISTS directory_resources_modified"
    " ON directory_resources (tenant, kind, last_modified)",
    """CREATE TABLE IF NOT EXISTS directory_values (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    scim_id TEXT NOT NULL,
    path TEXT NOT NULL,
    element TEXT NOT NULL,
    value TEXT NOT NULL,
    folded TEXT NOT NULL,
    number DOUBLE PRECISION
)""",
    "CREATE INDEX IF NOT EXISTS directory_values_folded"
    " ON directory_values (tenant, kind, path, folded)",
    "CREATE INDEX IF NOT EXISTS directory_values_exact"
    " ON directory_values (tenant, kind, path, value)",
    "CREATE INDEX IF NOT EXISTS directory_values_number"
    " ON directory_values (tenant, kind, path, number)",
    "CREATE INDEX IF NOT EXISTS directory_values_owner"
    " ON directory_values (tenant, kind, scim_id, path, element)",
)

USER: Final = "User"
GROUP: Final = "Group"
_MEMBER_PATHS: Final = ("members", "members.value", "members.display", "members.type")


@dataclass(frozen=True, slots=True)
class Value:
    """One searchable value of a resource."""

    path: str
    element: str
    value: str
    folded: str
    number: float | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """A resource as kept: its body (JSON, no meta) and what meta is made of."""

    kind: str
    scim_id: str
    source_id: str
    created: str
    last_modified: str
    revision: int
    deleted_at: str | None
    resource: str


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    resources: tuple[Stored, ...]


_COLUMNS: Final = (
    "r.kind, r.scim_id, r.source_id, r.created, r.last_modified, r.revision, r.deleted_at,"
    " r.resource"
)


class DirectoryIndex:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def aclose(self) -> None:
        await self._db.aclose()

    async def put(
        self,
        tenant: str,
        kind: str,
        source_id: str,
        scim_id: str,
        display: str,
        resource: str,
        values: Sequence[Value],
        now: str,
        deleted_at: str | None = None,
    ) -> bool:
        """Keep the resource and its values unless they are what is kept already; whether
        anything changed (a change moves lastModified and the revision)."""
        rows = await self._db.fetch(
            "SELECT resource, deleted_at FROM directory_resources"
            " WHERE tenant = ? AND kind = ? AND source_id = ?",
            [tenant, kind, source_id],
        )
        if rows and rows[0][0] == resource and (rows[0][1] is None) == (deleted_at is None):
            return False
        statements: list[Statement] = [
            (
                "INSERT INTO directory_resources (tenant, kind, source_id, scim_id, position,"
                " created, last_modified, revision, display, deleted_at, resource)"
                " VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(position), 0) + 1"
                " FROM directory_resources WHERE tenant = ? AND kind = ?), ?, ?, 1, ?, ?, ?)"
                " ON CONFLICT (tenant, kind, source_id) DO UPDATE SET"
                " last_modified = excluded.last_modified,"
                " revision = directory_resources.revision + 1, display = excluded.display,"
                " deleted_at = excluded.deleted_at, resource = excluded.resource",
                [
                    tenant,
                    kind,
                    source_id,
                    scim_id,
                    tenant,
                    kind,
                    now,
                    now,
                    display,
                    deleted_at,
                    resource,
                ],
            ),
            (
                "DELETE FROM directory_values WHERE tenant = ? AND kind = ? AND scim_id = ?"
                " AND path NOT IN (?, ?, ?, ?)",
                [tenant, kind, scim_id, *_MEMBER_PATHS],
            ),
        ]
        statements += [_insert_value(tenant, kind, scim_id, v) for v in values]
        await self._db.transact(statements)
        return True

    async def set_memberships(
        self, tenant: str, user_id: str, display: str, group_ids: Sequence[str], now: str
    ) -> None:
        """The user is a member of exactly `group_ids` (shown as `display`); the Groups whose
        member list this changes are modified now."""
        rows = await self._db.fetch(
            "SELECT v.scim_id, d.value FROM directory_values v JOIN directory_values d"
            " ON d.tenant = v.tenant AND d.kind = v.kind AND d.scim_id = v.scim_id"
            " AND d.element = v.element AND d.path = 'members.display'"
            " WHERE v.tenant = ? AND v.kind = ? AND v.path = 'members.value' AND v.value = ?",
            [tenant, GROUP, user_id],
        )
        before = {str(row[0]): str(row[1]) for row in rows}
        after = dict.fromkeys(group_ids, display)
        if before == after:
            return
        touched = sorted(set(before) | set(after))
        statements: list[Statement] = [
            (
                "DELETE FROM directory_values WHERE tenant = ? AND kind = ? AND scim_id = ?"
                " AND path IN (?, ?, ?, ?) AND element = ?",
                [tenant, GROUP, group, *_MEMBER_PATHS, user_id],
            )
            for group in before
        ]
        for group in after:
            for path, value in (
                ("members", ""),
                ("members.value", user_id),
                ("members.display", display),
                ("members.type", USER),
            ):
                member = Value(path, user_id, value, value.lower())
                statements.append(_insert_value(tenant, GROUP, group, member))
        statements += [
            (
                "UPDATE directory_resources SET last_modified = ?, revision = revision + 1"
                " WHERE tenant = ? AND kind = ? AND scim_id = ?",
                [now, tenant, GROUP, group],
            )
            for group in touched
        ]
        await self._db.transact(statements)

    async def remove(self, tenant: str, kind: str, source_id: str) -> str | None:
        """Forget a resource and its values; its id, if it was kept."""
        rows = await self._db.fetch(
            "SELECT scim_id FROM directory_resources"
            " WHERE tenant = ? AND kind = ? AND source_id = ?",
            [tenant, kind, source_id],
        )
        if not rows:
            return None
        scim_id = str(rows[0][0])
        await self._db.transact(
            [
                (
                    "DELETE FROM directory_values WHERE tenant = ? AND kind = ? AND scim_id = ?",
                    [tenant, kind, scim_id],
                ),
                (
                    "DELETE FROM directory_resources WHERE tenant = ? AND kind = ?"
                    " AND source_id = ?",
                    [tenant, kind, source_id],
                ),
            ]
        )
        return scim_id

    async def get(self, tenant: str, kind: str, scim_id: str, visible_since: str) -> Stored | None:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM directory_resources r"
            " WHERE r.tenant = ? AND r.kind = ? AND r.scim_id = ?"
            " AND (r.deleted_at IS NULL OR r.deleted_at > ?)",
            [tenant, kind, scim_id, visible_since],
        )
        return _stored(rows[0]) if rows else None

    async def by_source(self, tenant: str, kind: str, source_id: str) -> Stored | None:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM directory_resources r"
            " WHERE r.tenant = ? AND r.kind = ? AND r.source_id = ?",
            [tenant, kind, source_id],
        )
        return _stored(rows[0]) if rows else None

    async def search(
        self,
        tenant: str,
        kind: str,
        where: tuple[str, Sequence[Any]],
        order: tuple[str, Sequence[Any]],
        offset: int,
        limit: int,
        visible_since: str,
    ) -> Page:
        """One page of the resources `where` (SQL over `r`, from workers/directory/filters.py)
        selects, in `order`, and how many there are in all."""
        condition, condition_params = where
        ordering, ordering_params = order
        base = (
            " FROM directory_resources r WHERE r.tenant = ? AND r.kind = ?"
            " AND (r.deleted_at IS NULL OR r.deleted_at > ?)"
            f" AND ({condition})"
        )
        params = [tenant, kind, visible_since, *condition_params]
        total = await self._db.fetch(f"SELECT COUNT(*){base}", params)
        if limit <= 0:
            return Page(int(total[0][0]), ())
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS}{base} ORDER BY {ordering} LIMIT ? OFFSET ?",
            [*params, *ordering_params, limit, offset],
        )
        return Page(int(total[0][0]), tuple(_stored(row) for row in rows))

    async def members(self, tenant: str, group_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each Group's member ids, in the order they joined."""
        if not group_ids:
            return {}
        marks = ", ".join("?" * len(group_ids))
        rows = await self._db.fetch(
            "SELECT scim_id, value FROM directory_values WHERE tenant = ? AND kind = ?"
            f" AND path = 'members.value' AND scim_id IN ({marks})"
            " ORDER BY scim_id, value",
            [tenant, GROUP, *group_ids],
        )
        found: dict[str, list[str]] = {}
        for group, member in rows:
            found.setdefault(str(group), []).append(str(member))
        return found

    async def displays(self, tenant: str, kind: str, scim_ids: Sequence[str]) -> dict[str, str]:
        """The display names of resources, by id."""
        if not scim_ids:
            return {}
        marks = ", ".join("?" * len(scim_ids))
        rows = await self._db.fetch(
            "SELECT scim_id, display FROM directory_resources WHERE tenant = ? AND kind = ?"
            f" AND scim_id IN ({marks})",
            [tenant, kind, *scim_ids],
        )
        return {str(row[0]): str(row[1]) for row in rows}

    async def groups_of(self, tenant: str, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """The Groups each user is a member of."""
        if not user_ids:
            return {}
        marks = ", ".join("?" * len(user_ids))
        rows = await self._db.fetch(
            "SELECT value, scim_id FROM directory_values WHERE tenant = ? AND kind = ?"
            f" AND path = 'members.value' AND value IN ({marks})"
            " ORDER BY value, scim_id",
            [tenant, GROUP, *user_ids],
        )
        found: dict[str, list[str]] = {}
        for user, group in rows:
            found.setdefault(str(user), []).append(str(group))
        return found

    async def forget(self, tenant: str | None) -> None:
        """Empty the index (of one tenant), before a rebuild from the feed."""
        where, params = ("WHERE tenant = ?", [tenant]) if tenant else ("", [])
        await self._db.transact(
            [
                (f"DELETE FROM directory_values {where}", params),
                (f"DELETE FROM directory_resources {where}", params),
            ]
        )


def open_directory_index(url: str) -> DirectoryIndex:
    return DirectoryIndex(open_database(url, DIRECTORY_SCHEMA))


def _insert_value(tenant: str, kind: str, scim_id: str, v: Value) -> Statement:
    return (
        "INSERT INTO directory_values"
        " (tenant, kind, scim_id, path, element, value, folded, number)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [tenant, kind, scim_id, v.path, v.element, v.value, v.folded, v.number],
    )


def _stored(row: Row) -> Stored:
    return Stored(
        kind=str(row[0]),
        scim_id=str(row[1]),
        source_id=str(row[2]),
        created=str(row[3]),
        last_modified=str(row[4]),
        revision=int(row[5]),
        deleted_at=None if row[6] is None else str(row[6]),
        resource=str(row[7]),
    )
