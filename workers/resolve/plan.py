"""Which entities a batch of hints touches, and how to learn each one's state: pure.

Many hints about one entity in a batch become one piece of work: one vendor read, or none when
the latest hint carries the whole entity (a full-field WeCom create). A userid change touches
two entities: the new id is read, and the old one is read too, so its deletion is confirmed
by the vendor rather than taken from the hint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.event import ContactEvent
from schemas.types import Entity
from workers.vendors.source import (
    SourceDepartment,
    SourceUser,
    department_from_attributes,
    user_from_attributes,
)


@dataclass
class Work:
    """One entity to describe: the hints about it (oldest first), and its state when the
    latest of them carried all of it."""

    kind: Entity
    id: str
    hints: list[ContactEvent] = field(default_factory=list)
    complete: SourceUser | SourceDepartment | None = None
    renamed_to: str | None = None  # a userid the vendor may have moved this user to

    @property
    def key(self) -> tuple[Entity, str]:
        return self.kind, self.id


def plan(hints: Iterable[ContactEvent], trust_complete: bool = True) -> list[Work]:
    """One piece of work per touched entity, in the order of each entity's first hint.
    `trust_complete=False` (a replay: the hint may be old) reads every entity."""
    works: dict[tuple[Entity, str], Work] = {}

    def work_for(kind: Entity, entity_id: str) -> Work:
        return works.setdefault((kind, entity_id), Work(kind, entity_id))

    for hint in hints:
        work = work_for(hint.entity, hint.entity_id)
        work.hints.append(hint)
        work.complete = _complete(hint) if trust_complete else None
        new_userid = hint.attributes.get("new_userid")
        if hint.change == "renamed" and isinstance(new_userid, str) and new_userid:
            work.renamed_to = new_userid
            moved = work_for("user", new_userid)
            moved.hints.append(hint)
            moved.complete = None
    return list(works.values())


def _complete(hint: ContactEvent) -> SourceUser | SourceDepartment | None:
    """The entity's whole state, when the hint carries it; only a create can (an update's
    fields may be a partial list of what changed)."""
    if hint.change != "created":
        return None
    try:
        if hint.entity == "user":
            return user_from_attributes(hint.attributes)
        return department_from_attributes(hint.attributes)
    except (TypeError, ValueError):  # not well formed after all: the vendor is read instead
        return None
