"""What a full sync did, counted per effect, with the errors of the entities it could not
bring to the snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncCounts:
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    deleted: int = 0
    unchanged: int = 0
    held: int = 0  # deletions the guard holds until `orgstream approve-deletions`
    deferred: int = 0  # touched by a callback during the sync: left to the event path
    failed: int = 0
    # With the feed on: records the walk added to the feed, and entities missing from the walk
    # that the resolver was asked to confirm gone.
    published: int = 0
    confirming: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "deactivated": self.deactivated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "held": self.held,
            "deferred": self.deferred,
            "failed": self.failed,
            "published": self.published,
            "confirming": self.confirming,
        }
