"""The query of a list or `.search` request (RFC 7644 §3.4.2): which resources, in which
order, which page, which attributes; and the projection of each resource it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from workers.directory.attributes import ATTRIBUTES, path_of, split_name
from workers.directory.filters import FilterError, Sql

_ALWAYS: Final = frozenset({"id", "schemas"})
_LARGEST: Final = 2**31  # past any directory, and within every database's integers


class QueryError(ValueError):
    """A parameter that is not usable: answered 400 `invalidValue`."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    filter: str | None = None
    sort_by: str | None = None
    descending: bool = False
    start_index: int = 1
    count: int | None = None
    attributes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def query_of(params: Mapping[str, Any]) -> ListQuery:
    """From the URL's parameters, or a SearchRequest body (the same names)."""
    order = str(params.get("sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise QueryError("sortOrder: ascending or descending")
    return ListQuery(
        filter=_text(params.get("filter")),
        sort_by=_text(params.get("sortBy")),
        descending=order == "descending",
        start_index=min(max(1, _integer(params, "startIndex", 1)), _LARGEST),
        count=None if params.get("count") is None else max(0, _integer(params, "count", 0)),
        attributes=_names(params.get("attributes")),
        excluded=_names(params.get("excludedAttributes")),
    )


def order_of(kind: str, tenant: str, query: ListQuery, lenient: bool = False) -> Sql:
    """ORDER BY for the query: the sort attribute's smallest value (resources without one
    last, as RFC 7644 §3.4.2.3 asks), then the order resources first appeared in, which new
    resources cannot disturb while a client pages."""
    if query.sort_by is None or (lenient and not _known(kind, query.sort_by)):
        # With a filter, `+` keeps the planner from walking every resource in position order
        # to find the few the filter selects: it looks them up, then sorts them.
        return ("+r.position, r.scim_id" if query.filter else "r.position, r.scim_id"), []
    attr, sub, uri = split_name(kind, query.sort_by)
    path = path_of(kind, attr, sub, uri)
    attribute = ATTRIBUTES[kind].get(path)
    if attribute is not None and attribute.type == "complex" and attribute.default_sub:
        path = f"{path}.{attribute.default_sub}"
        attribute = ATTRIBUTES[kind][path]
    if attribute is None:
        raise QueryError(f"sortBy: no such attribute {query.sort_by!r} on {kind}")
    direction = "DESC" if query.descending else "ASC"
    nulls = "NULLS FIRST" if query.descending else "NULLS LAST"
    if attribute.column is not None:
        return f"{attribute.column} {direction}, r.position, r.scim_id", []
    field = "number" if attribute.type == "integer" else "folded"  # folded: as filters compare
    key = (
        f"(SELECT MIN(s.{field}) FROM directory_values s WHERE s.tenant = ? AND s.kind = ?"
        " AND s.scim_id = r.scim_id AND s.path = ?)"
    )
    return f"{key} {direction} {nulls}, r.position, r.scim_id", [tenant, kind, path]


def _known(kind: str, name: str) -> bool:
    attr, sub, uri = split_name(kind, name)
    return path_of(kind, attr, sub, uri) in ATTRIBUTES[kind]


def project(resource: dict[str, Any], query: ListQuery) -> dict[str, Any]:
    """The resource with only the attributes asked for (`id` and `schemas` always)."""
    if query.attributes:
        return _keep(resource, query.attributes)
    if query.excluded:
        return _drop(resource, query.excluded)
    return resource


def _keep(resource: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    kept: dict[str, Any] = {k: v for k, v in resource.items() if k in _ALWAYS}
    wanted: dict[str, set[str] | None] = {}  # top-level key -> its parts asked for (None: all)
    for name in names:
        for key in resource:
            sub = _sub_of(key, name)
            if sub == "":
                wanted[key] = None
            elif sub is not None:
                parts = wanted.setdefault(key, set())
                if parts is not None:
                    parts.add(sub.partition(".")[0])
    for key, parts in wanted.items():
        kept[key] = resource[key] if parts is None else _only(resource[key], parts)
    return {k: v for k, v in kept.items() if v not in ({}, [])}


def _drop(resource: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    result = dict(resource)
    for name in names:
        for key in list(result):
            sub = _sub_of(key, name)
            if key in _ALWAYS or sub is None:
                continue
            if sub == "":
                del result[key]
            else:
                result[key] = _without(result[key], sub.partition(".")[0])
    return result


def _only(value: Any, parts: set[str]) -> Any:
    """A complex attribute with only these sub-attributes (each element, when multi-valued)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() in parts}
    if isinstance(value, list):
        return [_only(item, parts) for item in value if isinstance(item, dict)]
    return value


def _without(value: Any, part: str) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() != part}
    if isinstance(value, list):
        return [_without(item, part) for item in value]
    return value


def _sub_of(key: str, name: str) -> str | None:
    """How `name` (an `attributes` entry) reaches into the resource's top-level `key`: ""
    for all of it, the rest of the name for a part of it, None when it does not."""
    wanted, key = name.lower(), key.lower()
    for schema in ("urn:ietf:params:scim:schemas:core:2.0:user:",
                   "urn:ietf:params:scim:schemas:core:2.0:group:"):  # fmt: skip
        wanted = wanted.removeprefix(schema)
    if key.startswith("urn:"):
        if wanted == key:
            return ""
        return wanted[len(key) + 1 :] if wanted.startswith(key + ":") else None
    head, _, rest = wanted.partition(".")
    return rest if head == key else None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise QueryError("filter and sortBy are strings")
    return value


def _integer(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool):
        raise QueryError(f"{name}: an integer")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise QueryError(f"{name}: an integer") from exc


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QueryError("attributes: a comma-separated list of attribute names")
    return tuple(v.strip() for v in value if v.strip())


__all__ = ["FilterError", "ListQuery", "QueryError", "order_of", "project", "query_of"]
