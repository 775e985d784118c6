"""A target's attribute mapping (docs/mapping.md): which expression feeds which SCIM User
attribute, on top of the default mapping. Parsed once from the configuration; applying it to a
resource only sets or removes the attributes it names.

The attribute side is a small path language of its own, checked here:

    attribute := simple | "name." part | multi '[type eq "' type '"]' | urn ":" name
    simple    := userName | displayName | nickName | title | userType | profileUrl
               | preferredLanguage | locale | timezone
    part      := formatted | familyName | givenName | middleName | honorificPrefix
               | honorificSuffix
    multi     := emails | phoneNumbers | ims | photos

`externalId`, `active`, `groups`, the manager and anything read-only stay orgstream's own: the
identity, the scope and the hierarchy decide them, not a mapping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.mapping.expression import Expression, MappingError, Record, parse

CORE_USER: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
_SIMPLE: Final = frozenset(
    {"userName", "displayName", "nickName", "title", "userType", "profileUrl"}
    | {"preferredLanguage", "locale", "timezone"}
)
_NAME_PARTS: Final = frozenset(
    {"formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"}
)
_MULTI: Final = frozenset({"emails", "phoneNumbers", "ims", "photos"})
_OWN: Final = {  # lower-cased: attribute names ignore case (RFC 7643 §2.1)
    "externalid": "orgstream's identity of the user",
    "active": "the scope and the vendor's status decide it",
    "groups": "memberships follow the departments",
    f"{ENTERPRISE_USER}:manager".lower(): "the first direct leader's id on the target",
}
# Which SCIM attribute each user field of the feed feeds: a field kept off the feed
# (`[feed] exclude_fields`) leaves its attribute to the target.
FIELD_ATTRIBUTES: Final = {
    "title": "title",
    "email": "emails",
    "biz_mail": "emails",
    "mobile": "phoneNumbers",
    "telephone": "phoneNumbers",
}
_CORE_URNS: Final = "urn:ietf:params:scim:schemas:core:"
_SETTABLE_TYPES: Final = frozenset({"string", "reference"})
_MULTI_PATH: Final = re.compile(r'(\w+)\[type eq "([A-Za-z0-9_-]{1,40})"\]')
_URN_PATH: Final = re.compile(r"(urn:[A-Za-z0-9:._-]+):([A-Za-z][A-Za-z0-9_-]*)")


@dataclass(frozen=True, slots=True)
class MappedAttribute:
    key: str  # as written in the configuration, for messages
    attribute: str  # core name, multi-valued name, or the extension attribute's name
    sub: str = ""  # name.<sub>, or the type of a multi-valued entry
    urn: str = ""  # the extension's schema, for extension attributes
    expression: Expression = field(default_factory=lambda: parse('""'))

    @property
    def patch_path(self) -> str:
        """The PATCH path whose value this attribute's change replaces."""
        if self.urn:
            return f"{self.urn}:{self.attribute}"
        if self.attribute == "name":
            return f"name.{self.sub}"
        return self.attribute


@dataclass(frozen=True, slots=True)
class AttributeMapping:
    attributes: tuple[MappedAttribute, ...] = ()
    tables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def reads_custom(self) -> bool:
        """Whether an expression reads a vendor custom field (which callbacks do not carry)."""
        return any(f.startswith("custom.") for a in self.attributes for f in a.expression.fields)

    @property
    def patch_paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.patch_path for a in self.attributes))

    def apply(self, resource: dict[str, Any], record: Record) -> dict[str, Any]:
        """`resource` (the default mapping's) with every mapped attribute set from `record`; an
        expression that comes out empty removes the attribute (a userName keeps the default)."""
        for mapped in self.attributes:
            _put(resource, mapped, mapped.expression.evaluate(record, self.tables))
        return resource


def parse_mapping(
    entries: Mapping[str, Any], tables: Mapping[str, Any], where: str
) -> AttributeMapping:
    """The `[… .mapping]` table (attribute → expression) and its lookup tables; a mistake
    raises `MappingError` naming the key."""
    checked_tables = _tables(tables, f"{where}_tables")
    attributes = []
    for key, source in entries.items():
        name = f"{where}.{key}"
        if not isinstance(source, str):
            raise MappingError(f"{name}: must be an expression in a string")
        try:
            expression = parse(source)
        except MappingError as exc:
            raise MappingError(f"{name}: {exc}") from None
        missing = sorted(expression.tables - set(checked_tables))
        if missing:
            raise MappingError(f"{name}: no lookup table {missing[0]!r} in {where}_tables")
        attributes.append(_attribute(key, name, expression))
    return AttributeMapping(tuple(attributes), checked_tables)


def unmanaged_attributes(excluded_fields: Iterable[str]) -> frozenset[str]:
    """The attributes orgstream must leave alone when these fields are kept off the feed."""
    return frozenset(FIELD_ATTRIBUTES[f] for f in excluded_fields if f in FIELD_ATTRIBUTES)


def _attribute(key: str, name: str, expression: Expression) -> MappedAttribute:
    if key.lower() in _OWN:
        raise MappingError(f"{name}: orgstream sets this attribute itself ({_OWN[key.lower()]})")
    if key in _SIMPLE:
        return MappedAttribute(key, key, expression=expression)
    head, dot, sub = key.partition(".")
    if head == "name" and dot and sub in _NAME_PARTS:
        return MappedAttribute(key, "name", sub, expression=expression)
    multi = _MULTI_PATH.fullmatch(key)
    if multi and multi.group(1) in _MULTI:
        return MappedAttribute(key, multi.group(1), multi.group(2), expression=expression)
    urn = _URN_PATH.fullmatch(key)
    if urn and not urn.group(1).startswith(_CORE_URNS):  # core attributes go by their name
        return MappedAttribute(key, urn.group(2), urn=urn.group(1), expression=expression)
    if key in _MULTI:
        raise MappingError(f'{name}: say which entry, e.g. {key}[type eq "work"]')
    raise MappingError(
        f"{name}: not an attribute a mapping can set (core attributes, name.<part>, "
        f'emails/phoneNumbers/ims/photos[type eq "…"], or <extension urn>:<attribute>)'
    )


def _tables(tables: Mapping[str, Any], where: str) -> dict[str, dict[str, str]]:
    checked: dict[str, dict[str, str]] = {}
    for name, table in tables.items():
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise MappingError(f"{where}.{name}: must be a table of strings")
        checked[name] = {str(k): v for k, v in table.items()}
    return checked


def _put(resource: dict[str, Any], mapped: MappedAttribute, value: str) -> None:
    if mapped.urn:
        extension = dict(resource.get(mapped.urn) or {})
        _set_value(extension, mapped.attribute, value)
        schemas = [s for s in resource.get("schemas", []) if s != mapped.urn]
        if extension:
            resource[mapped.urn] = extension
            schemas.append(mapped.urn)
        else:
            resource.pop(mapped.urn, None)
        resource["schemas"] = schemas
    elif mapped.attribute == "name":
        name = dict(resource.get("name") or {})
        _set_value(name, mapped.sub, value)
        _set_value(resource, "name", name)
    elif mapped.sub:  # one typed entry of a multi-valued attribute
        entries = [e for e in resource.get(mapped.attribute, []) if e.get("type") != mapped.sub]
        if value:
            entry: dict[str, Any] = {"value": value, "type": mapped.sub}
            if mapped.attribute == "emails" and not any(e.get("primary") for e in entries):
                entry["primary"] = True
            entries.insert(0, entry)
        _set_value(resource, mapped.attribute, entries)
    elif value or mapped.attribute != "userName":  # SCIM requires a userName: an empty
        _set_value(resource, mapped.attribute, value)  # one keeps the `user_name` template's


def _set_value(container: dict[str, Any], key: str, value: Any) -> None:
    if value:
        container[key] = value
    else:
        container.pop(key, None)


def check_against_schemas(
    mapping: AttributeMapping, schemas: Iterable[Mapping[str, Any]], where: str
) -> None:
    """Refuse, naming the key, an attribute the target's `/Schemas` does not list, lists as
    read-only, or types as anything but one string. `schemas`: the target's schema resources
    (its answer to GET /Schemas)."""
    by_id = {str(s.get("id", "")): s for s in schemas}
    for mapped in mapping.attributes:
        urn = mapped.urn or CORE_USER
        schema = by_id.get(urn)
        name = f"{where}.{mapped.key}"
        if schema is None:
            raise MappingError(f"{name}: the target does not advertise the schema {urn}")
        attribute = _find(schema.get("attributes", []), mapped.attribute)
        if attribute is None:
            raise MappingError(f"{name}: {urn} has no attribute {mapped.attribute!r}")
        parts = attribute.get("subAttributes", [])
        if mapped.attribute == "name" and _find(parts, mapped.sub) is None:
            raise MappingError(f"{name}: the target's name has no part {mapped.sub!r}")
        if attribute.get("mutability") in ("readOnly", "immutable"):
            raise MappingError(f"{name}: the target says {mapped.attribute} is read-only")
        if mapped.attribute not in _MULTI:  # one typed entry of those is a complex value
            kind = _find(parts, mapped.sub) if mapped.attribute == "name" else attribute
            _check_text(kind or {}, name)


def _check_text(attribute: Mapping[str, Any], name: str) -> None:
    """An expression gives one string: the attribute must take one."""
    kind = str(attribute.get("type", "string"))
    if kind not in _SETTABLE_TYPES or attribute.get("multiValued") is True:
        many = "multi-valued " if attribute.get("multiValued") is True else ""
        raise MappingError(f"{name}: the target's attribute is {many}{kind}, not one string")


def _find(attributes: Iterable[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    lowered = name.lower()  # RFC 7643 §2.1: attribute names are case-insensitive
    return next((a for a in attributes if str(a.get("name", "")).lower() == lowered), None)
