"""The rows of the directory index (workers/store/directory_index.py) and the statements that
write them: a resource with its searchable values, and a user's memberships, which are rows of
the Groups it is a member of."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from workers.store.database import Statement

USER: Final = "User"
GROUP: Final = "Group"
MEMBER_PATHS: Final = ("members", "members.value", "members.display", "members.type")


@dataclass(frozen=True, slots=True)
class Value:
    """One searchable value of a resource: `folded` is what filters compare, lower-cased for
    an attribute compared without case, the value itself for one compared exactly."""

    path: str
    element: str
    value: str
    folded: str
    number: float | None = None


# A user's memberships: the Groups it is a member of, and the name it is shown with there.
MEMBERSHIPS_OF: Final = (
    "SELECT 'member', v.scim_id, d.value FROM directory_values v JOIN directory_values d"
    " ON d.tenant = v.tenant AND d.kind = v.kind AND d.scim_id = v.scim_id"
    " AND d.element = v.element AND d.path = 'members.display'"
    " WHERE v.tenant = ? AND v.kind = ? AND v.path = 'members.value' AND v.folded = ?"
)


def resource_statements(
    tenant: str,
    kind: str,
    source_id: str,
    scim_id: str,
    display: str,
    resource: str,
    values: Sequence[Value],
    now: str,
    deleted_at: str | None,
) -> list[Statement]:
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
            [tenant, kind, scim_id, *MEMBER_PATHS],
        ),
    ]
    return statements + [insert_value(tenant, kind, scim_id, v) for v in values]


def membership_statements(
    tenant: str, user_id: str, before: dict[str, str], after: dict[str, str], now: str
) -> list[Statement]:
    """From the Groups (and display) a user was a member of to those it is now; nothing when
    they are the same."""
    if before == after:
        return []
    statements: list[Statement] = [
        (
            "DELETE FROM directory_values WHERE tenant = ? AND kind = ? AND scim_id = ?"
            " AND path IN (?, ?, ?, ?) AND element = ?",
            [tenant, GROUP, group, *MEMBER_PATHS, user_id],
        )
        for group in before
    ]
    for group in after:
        for path, value in (
            ("members", ""),
            ("members.value", user_id),
            ("members.display", after[group]),
            ("members.type", USER),
        ):
            # An id compares exactly: its `folded` is the id itself.
            folded = value if path == "members.value" else value.lower()
            member = Value(path, user_id, value, folded)
            statements.append(insert_value(tenant, GROUP, group, member))
    statements += [
        (
            "UPDATE directory_resources SET last_modified = ?, revision = revision + 1"
            " WHERE tenant = ? AND kind = ? AND scim_id = ?",
            [now, tenant, GROUP, group],
        )
        for group in sorted(set(before) | set(after))
    ]
    return statements


def insert_value(tenant: str, kind: str, scim_id: str, v: Value) -> Statement:
    return (
        "INSERT INTO directory_values"
        " (tenant, kind, scim_id, path, element, value, folded, number)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant, kind, scim_id, path, element) DO NOTHING",
        [tenant, kind, scim_id, v.path, v.element, v.value, v.folded, v.number],
    )
