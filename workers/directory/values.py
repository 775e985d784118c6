"""A rendered resource as the rows a filter searches (workers/store/directory_index.py)."""

from __future__ import annotations

from typing import Any

from workers.store.directory_rows import Value

_NOT_SEARCHED = frozenset({"schemas", "id", "meta", "members", "groups"})


def values_of(resource: dict[str, Any], exact: frozenset[str] = frozenset()) -> list[Value]:
    """`exact`: the paths compared with case (their `folded` is the value as written)."""
    rows: list[Value] = []
    for key, value in resource.items():
        if key in _NOT_SEARCHED:
            continue
        if key.startswith("urn:") and isinstance(value, dict):
            for name, inner in value.items():
                _add(rows, f"{key.lower()}:{name.lower()}", inner)
        else:
            _add(rows, key.lower(), value)
    return [
        Value(r.path, r.element, r.value, r.value, r.number) if r.path in exact else r for r in rows
    ]


def _add(rows: list[Value], path: str, value: Any) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            element = str(index)
            if isinstance(item, dict):
                rows.append(Value(path, element, "", ""))
                rows += [_scalar(f"{path}.{k.lower()}", element, v) for k, v in item.items()]
            else:
                rows.append(_scalar(path, element, item))
    elif isinstance(value, dict):
        rows += [_scalar(f"{path}.{k.lower()}", "0", v) for k, v in value.items()]
    elif value is not None:
        rows.append(_scalar(path, "0", value))


def _scalar(path: str, element: str, value: Any) -> Value:
    if isinstance(value, bool):
        text = "true" if value else "false"
        return Value(path, element, text, text)
    number = float(value) if isinstance(value, int | float) else None
    text = str(value)
    return Value(path, element, text, text.lower(), number)
