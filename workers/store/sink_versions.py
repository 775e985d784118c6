"""The version of each entity's record a sink last applied, so that it never applies an older
one after it: the resolver, the full sync and DingTalk's recovery all produce records on the
same keys, and a sync's record may reach the topic after a callback's newer one
(docs/design.md, principle 3)."""

from __future__ import annotations

from typing import Final

from workers.store.database import Database, open_database

SINK_VERSIONS_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS sink_versions (
    sink TEXT NOT NULL,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (sink, tenant, kind, id)
)""",
)


class SinkVersions:
    """One sink's (a consumer group's) applied versions."""

    def __init__(self, db: Database, sink: str) -> None:
        self._db = db
        self._sink = sink

    async def aclose(self) -> None:
        await self._db.aclose()

    async def applied(self, tenant: str, kind: str, entity_id: str) -> int | None:
        rows = await self._db.fetch(
            "SELECT version FROM sink_versions WHERE sink = ? AND tenant = ? AND kind = ?"
            " AND id = ?",
            [self._sink, tenant, kind, entity_id],
        )
        return int(rows[0][0]) if rows else None

    async def note(self, tenant: str, kind: str, entity_id: str, version: int) -> None:
        """Remember `version` as applied, unless a newer one is remembered already."""
        await self._db.execute(
            "INSERT INTO sink_versions (sink, tenant, kind, id, version) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (sink, tenant, kind, id) DO UPDATE SET version = excluded.version"
            " WHERE sink_versions.version < excluded.version",
            [self._sink, tenant, kind, entity_id, version],
        )


def open_sink_versions(url: str, sink: str) -> SinkVersions:
    return SinkVersions(open_database(url, SINK_VERSIONS_SCHEMA), sink)
