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
written, the value filters compare (`folded`: lower-cased where the attribute compares without
case, as written where it compares exactly, so one index serves both), and a number for numbers.
Each value row costs two index entries, which is what a hire's write costs most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from workers.store.database import Database, Row, Statement, open_database
from workers.store.directory_rows import (
    GROUP,
    MEMBERSHIPS_OF,
    USER,
    Value,
    membership_statements,
    resource_statements,
)

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
    # Unique: two writers of one user (replicas, a rebuild beside the live sink) cannot add
    # the same row twice; the second one's insert does nothing.
    "CREATE UNIQUE INDEX IF NOT EXISTS directory_values_key"
    " ON directory_values (tenant, kind, scim_id, path, element)",
    # What an IdP wrote that the vendor cannot hold (its externalId, its userName when the
    # userid is made of it, a path-style Group name): served back over what the vendor has.
    # Not part of the index a rebuild empties: only the IdP can say it again.
    """CREATE TABLE IF NOT EXISTS directory_idp_attributes (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, source_id)
)""",
)


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
        groups: Sequence[str] | None = None,
    ) -> bool:
        """Keep the resource and its values unless they are what is kept already, and (for a
        user, `groups` given) make it a member of exactly those Groups; one read, one
        transaction. Whether the resource changed (a change moves lastModified and the
        revision; so does a Group's when its member list changes)."""
        member_of = scim_id if groups is not None else ""
        rows = await self._db.fetch(
            "SELECT 'resource', resource, deleted_at FROM directory_resources"
            " WHERE tenant = ? AND kind = ? AND source_id = ?"
            " UNION ALL " + MEMBERSHIPS_OF,
            [tenant, kind, source_id, tenant, GROUP, member_of],
        )
        kept = next((row for row in rows if row[0] == "resource"), None)
        changed = not (kept and kept[1] == resource and (kept[2] is None) == (deleted_at is None))
        statements: list[Statement] = []
        if changed:
            statements += resource_statements(
                tenant, kind, source_id, scim_id, display, resource, values, now, deleted_at
            )
        if groups is not None:
            before = {str(row[1]): str(row[2]) for row in rows if row[0] == "member"}
            joined = membership_statements(
                tenant, scim_id, before, dict.fromkeys(groups, display), now
            )
            if joined and not changed:  # its `groups` changed: so did the user
                statements.append(_touch(tenant, kind, [scim_id], now))
            statements += joined
        if statements:
            await self._db.transact(statements)
        return changed

    async def touch(self, tenant: str, kind: str, scim_ids: Sequence[str], now: str) -> None:
        """These resources changed without a write of their own (a Group they show renamed)."""
        chunks = [scim_ids[i : i + 500] for i in range(0, len(scim_ids), 500)]
        if chunks:  # a big department's members, within every database's parameter limit
            await self._db.transact([_touch(tenant, kind, chunk, now) for chunk in chunks])

    async def set_memberships(
        self, tenant: str, user_id: str, display: str, group_ids: Sequence[str], now: str
    ) -> None:
        """The user is a member of exactly `group_ids` (shown as `display`); the Groups whose
        member list this changes are modified now."""
        rows = await self._db.fetch(MEMBERSHIPS_OF, [tenant, GROUP, user_id])
        before = {str(row[1]): str(row[2]) for row in rows}
        statements = membership_statements(
            tenant, user_id, before, dict.fromkeys(group_ids, display), now
        )
        if statements:
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

    async def idp_attributes(self, tenant: str, kind: str, source_id: str) -> dict[str, Any]:
        rows = await self._db.fetch(
            "SELECT attributes FROM directory_idp_attributes"
            " WHERE tenant = ? AND kind = ? AND source_id = ?",
            [tenant, kind, source_id],
        )
        kept = orjson.loads(str(rows[0][0])) if rows else {}
        return kept if isinstance(kept, dict) else {}

    async def idp_sources(self, tenant: str, kind: str) -> dict[str, dict[str, Any]]:
        """Every resource of the tenant an IdP wrote, by source id, with what it keeps."""
        rows = await self._db.fetch(
            "SELECT source_id, attributes FROM directory_idp_attributes"
            " WHERE tenant = ? AND kind = ?",
            [tenant, kind],
        )
        return {str(row[0]): orjson.loads(str(row[1])) for row in rows}

    async def keep_idp_attributes(
        self, tenant: str, kind: str, source_id: str, attributes: dict[str, Any]
    ) -> None:
        """Replace what is kept for the resource; nothing kept when `attributes` is empty."""
        key = [tenant, kind, source_id]
        statements: list[Statement] = [
            ("DELETE FROM directory_idp_attributes"
             " WHERE tenant = ? AND kind = ? AND source_id = ?", key),
        ]  # fmt: skip
        if attributes:
            statements.append(
                (
                    "INSERT INTO directory_idp_attributes (tenant, kind, source_id, attributes)"
                    " VALUES (?, ?, ?, ?)",
                    [*key, orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode()],
                )
            )
        await self._db.transact(statements)

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

    async def count(self, tenant: str, kind: str) -> int:
        """The tenant's resources of this kind, leavers not counted."""
        rows = await self._db.fetch(
            "SELECT COUNT(*) FROM directory_resources"
            " WHERE tenant = ? AND kind = ? AND deleted_at IS NULL",
            [tenant, kind],
        )
        return int(rows[0][0])

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
        rows = []
        if limit > 0:
            rows = await self._db.fetch(
                f"SELECT {_COLUMNS}{base} ORDER BY {ordering} LIMIT ? OFFSET ?",
                [*params, *ordering_params, limit, offset],
            )
        if 0 < len(rows) < limit or (offset == 0 and limit > 0 and not rows):
            total = offset + len(rows)  # the last page: no need to count (a lookup's case)
        else:
            total = int((await self._db.fetch(f"SELECT COUNT(*){base}", params))[0][0])
        return Page(total, tuple(_stored(row) for row in rows))

    async def members(
        self, tenant: str, group_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, str]]]:
        """Each Group's members (id, display name) that are served as Users."""
        if not group_ids:
            return {}
        marks = ", ".join("?" * len(group_ids))
        rows = await self._db.fetch(
            "SELECT v.scim_id, v.folded, u.display FROM directory_values v"
            " JOIN directory_resources u ON u.tenant = v.tenant AND u.kind = ?"
            " AND u.scim_id = v.folded"
            " WHERE v.tenant = ? AND v.kind = ?"
            f" AND v.path = 'members.value' AND v.scim_id IN ({marks})",
            [USER, tenant, GROUP, *group_ids],
        )
        # Sorted here: an ORDER BY leads SQLite's planner away from the index.
        found: dict[str, list[tuple[str, str]]] = {}
        for group, member, display in sorted(rows):
            found.setdefault(str(group), []).append((str(member), str(display)))
        return found

    async def groups_of(
        self, tenant: str, user_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, str]]]:
        """The Groups each user is a member of, with their display names."""
        if not user_ids:
            return {}
        marks = ", ".join("?" * len(user_ids))
        rows = await self._db.fetch(
            "SELECT v.folded, v.scim_id, g.display FROM directory_values v"
            " JOIN directory_resources g ON g.tenant = v.tenant AND g.kind = v.kind"
            " AND g.scim_id = v.scim_id"
            " WHERE v.tenant = ? AND v.kind = ?"
            f" AND v.path = 'members.value' AND v.folded IN ({marks})",
            [tenant, GROUP, *user_ids],
        )
        # Sorted here: with an ORDER BY, SQLite's planner scans the tenant's Groups instead.
        found: dict[str, list[tuple[str, str]]] = {}
        for user, group, display in sorted(rows):
            found.setdefault(str(user), []).append((str(group), str(display)))
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


def _touch(tenant: str, kind: str, scim_ids: Sequence[str], now: str) -> Statement:
    marks = ", ".join("?" * len(scim_ids))
    return (
        "UPDATE directory_resources SET last_modified = ?, revision = revision + 1"
        f" WHERE tenant = ? AND kind = ? AND scim_id IN ({marks})",
        [now, tenant, kind, *scim_ids],
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
