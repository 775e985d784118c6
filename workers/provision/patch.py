"""SCIM PATCH (RFC 7644 §3.5.2) applied to a resource as served, in the dialects IdPs send:
`op` in any case (Entra's `Replace`), operations with and without `path`, a value-filtered path
(`emails[type eq "work"].value`, `members[value eq "…"]`), members removed by a value list
(Entra) or by a filter (Okta), extension attributes by their schema URN.

The result is the whole resource the IdP wants; what it means for the vendor is decided by
comparing it with what is there (workers/provision/users.py, groups.py).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Final

from workers.provision.errors import ProvisionError
from workers.scim.target import CORE_GROUP, CORE_USER, ENTERPRISE_USER, ORGSTREAM_GROUP

PATCH_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_EXTENSIONS: Final = (ENTERPRISE_USER, ORGSTREAM_GROUP)
_CORE: Final = (CORE_USER, CORE_GROUP)
_FILTERED: Final = re.compile(
    r'(?P<attr>[A-Za-z][\w$-]*)\[(?P<sub>[A-Za-z][\w$-]*) eq "(?P<value>[^"]*)"\]'
    r"(?:\.(?P<rest>\w+))?",
    re.IGNORECASE,
)
Resource = dict[str, Any]


def apply_patch(resource: Resource, body: dict[str, Any]) -> Resource:
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise _bad("Operations: a non-empty list is required", "invalidSyntax")
    patched = copy.deepcopy(resource)
    for operation in operations:
        if not isinstance(operation, dict):
            raise _bad("Operations: each operation is an object", "invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise _bad(
                f"op: {operation.get('op')!r} is none of add, replace, remove", "invalidSyntax"
            )
        path, value = operation.get("path"), operation.get("value")
        if path is None:
            _without_path(patched, op, value)
        elif isinstance(path, str) and path:
            _at_path(patched, op, path, value)
        else:
            raise _bad("path: must be a string", "invalidPath")
    return patched


def _without_path(resource: Resource, op: str, value: Any) -> None:
    """`value` names the attributes (Entra and Okta send `{"active": false}` this way)."""
    if op == "remove" or not isinstance(value, dict):
        raise _bad("value: an operation without a path takes an object of attributes", "noTarget")
    for name, item in value.items():
        if name.startswith("urn:") and isinstance(item, dict):
            for inner, inner_value in item.items():
                _at_path(resource, op, f"{name}:{inner}", inner_value)
        else:  # Entra sends `{"name.givenName": "…"}` keys as paths too
            _at_path(resource, op, name, item)


def _at_path(resource: Resource, op: str, path: str, value: Any) -> None:
    container, name = _container(resource, path)
    filtered = _FILTERED.fullmatch(name)
    if filtered:
        _filtered(container, op, filtered, value)
        return
    if "[" in name or "]" in name:  # a filter this server does not take: say so
        raise _bad(f'path: {path!r}: only `attr[sub eq "value"]` filters', "invalidFilter")
    key = _key(container, name)
    if op == "remove":
        listed = [value] if isinstance(value, dict) else value
        if isinstance(listed, list) and isinstance(container.get(key), list):
            gone = {str(v.get("value")) for v in listed if isinstance(v, dict)}
            container[key] = [
                v
                for v in container[key]
                if not isinstance(v, dict) or str(v.get("value")) not in gone
            ]
        else:
            container.pop(key, None)
        return
    current = container.get(key)
    if op == "add" and isinstance(current, list):
        values = value if isinstance(value, list) else [value]
        known = {str(v.get("value")) for v in current if isinstance(v, dict)}
        current += [
            v for v in values if not isinstance(v, dict) or str(v.get("value")) not in known
        ]
    elif isinstance(current, dict) and isinstance(value, dict):
        current.update(value)
    else:
        container[key] = value


def _filtered(container: Resource, op: str, match: re.Match[str], value: Any) -> None:
    """`attr[sub eq "x"]` or `attr[sub eq "x"].rest` on a multi-valued attribute."""
    key = _key(container, match["attr"])
    items = container.get(key)
    items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    sub, wanted, rest = match["sub"], match["value"], match["rest"]
    hit = [i for i in items if str(_get(i, sub)).lower() == wanted.lower()]
    if op == "remove":
        if rest:
            for item in hit:
                item.pop(_key(item, rest), None)
        else:
            items = [i for i in items if i not in hit]
        container[key] = items
        return
    if not hit:  # replace or add on an element that is not there makes it
        hit = [{sub: wanted}]
        items.append(hit[0])
    for item in hit:
        if rest:
            item[_key(item, rest)] = value
        elif isinstance(value, dict):
            item.update(value)
        else:
            raise _bad(f"value: {match[0]} takes an object", "invalidValue")
    container[key] = items


def _container(resource: Resource, path: str) -> tuple[Resource, str]:
    """The object that holds the path's last attribute, made when missing."""
    for core in _CORE:  # `urn:…:core:2.0:User:displayName` is plain `displayName`
        if path.lower().startswith(core.lower() + ":"):
            path = path[len(core) + 1 :]
    if path.lower().startswith("urn:"):
        urns = {
            u.lower(): u for u in (*_EXTENSIONS, *(k for k in resource if k.startswith("urn:")))
        }
        if path.lower() in urns:  # the extension itself, as one complex attribute
            return resource, _key(resource, urns[path.lower()])
        urn, _, name = path.rpartition(":")
        key = _key(resource, urn)
        extension = resource.setdefault(key, {})
        if not isinstance(extension, dict):
            raise _bad(f"path: {urn} is not an extension", "invalidPath")
        return extension, name
    head, dot, rest = path.partition(".")
    if dot and "[" not in head:
        key = _key(resource, head)
        inner = resource.setdefault(key, {})
        if not isinstance(inner, dict):
            raise _bad(f"path: {head} has no sub-attributes", "invalidPath")
        return inner, rest
    return resource, path


def _key(container: Resource, name: str) -> str:
    """Attribute names compare without case: keep the spelling already there."""
    return next((k for k in container if k.lower() == name.lower()), name)


def _get(item: Resource, name: str) -> Any:
    return item.get(_key(item, name))


def _bad(detail: str, scim_type: str) -> ProvisionError:
    return ProvisionError(400, detail, scim_type)
