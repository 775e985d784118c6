"""A target's scope (docs/mapping.md): which departments and users of the directory it gets.

A department is in scope when it lies in one of the included subtrees (all of them when none is
listed) and in none of the excluded ones. A user is in scope when at least one of their
departments is and their fields pass every condition of `users`; their Groups on the target are
their in-scope departments only. Whoever is out of scope is, for that target, as good as gone at
the source: a leaver, deprovisioned through the deletion guard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.mapping.expression import FIELDS, MappingError, Record

# What a `users` condition may test: the mapping's fields, `active`, and custom fields.
SCOPE_FIELDS: Final = FIELDS | {"active"}


@dataclass(frozen=True, slots=True)
class Scope:
    include: frozenset[str] = frozenset()  # department ids: their subtrees; none: everything
    exclude: frozenset[str] = frozenset()
    users: Mapping[str, frozenset[str]] = field(default_factory=dict)  # field -> allowed values

    @property
    def everything(self) -> bool:
        return not (self.include or self.exclude or self.users)

    @property
    def by_departments(self) -> bool:
        """Whether departments are chosen (else only the user conditions apply)."""
        return bool(self.include or self.exclude)

    @property
    def reads_custom(self) -> bool:
        return any(name.startswith("custom.") for name in self.users)

    def holds_department(self, ancestry: Sequence[str]) -> bool:
        """`ancestry`: the department's id, its parent's, … up to the root."""
        if any(d in self.exclude for d in ancestry):
            return False
        return not self.include or any(d in self.include for d in ancestry)

    def admits(self, record: Record) -> bool:
        """Whether a user's fields (`active` as "true"/"false") pass every condition."""
        return all(record.get(name, "") in allowed for name, allowed in self.users.items())


def parse_scope(t: Mapping[str, Any], where: str) -> Scope:
    unknown = sorted(set(t) - {"include_departments", "exclude_departments", "users"})
    if unknown:
        raise MappingError(f"{where}.{unknown[0]}: unknown key")
    users = t.get("users", {})
    if not isinstance(users, dict):
        raise MappingError(f"{where}.users: must be a table of field = [allowed values]")
    conditions: dict[str, frozenset[str]] = {}
    for name, allowed in users.items():
        if name not in SCOPE_FIELDS and not (name.startswith("custom.") and len(name) > 7):
            known = ", ".join(sorted(SCOPE_FIELDS))
            raise MappingError(
                f"{where}.users.{name}: unknown field (known: {known}, custom.<key>)"
            )
        conditions[name] = frozenset(_strings(allowed, f"{where}.users.{name}", bools=True))
    return Scope(
        include=frozenset(
            _strings(t.get("include_departments", []), f"{where}.include_departments")
        ),
        exclude=frozenset(
            _strings(t.get("exclude_departments", []), f"{where}.exclude_departments")
        ),
        users=conditions,
    )


def _strings(value: Any, where: str, bools: bool = False) -> list[str]:
    """A list of ids or values; integers (department ids) and, for `users`, booleans (`active`)
    are taken as their text."""
    if not isinstance(value, list) or (bools and not value):
        raise MappingError(f"{where}: must be a list" + (" of at least one value" if bools else ""))
    out = []
    for item in value:
        if isinstance(item, bool) and bools:
            out.append("true" if item else "false")
        elif isinstance(item, str | int) and not isinstance(item, bool) and str(item):
            out.append(str(item))
        else:
            raise MappingError(f"{where}: must list strings or ids, not {item!r}")
    return out
