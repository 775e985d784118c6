"""What a filter, `sortBy` and `attributes` may name on each resource type, with the type and
case rule of each (RFC 7643 §4 and the Group extension of docs/directory-server.md).

Paths are lower case: attribute names are case-insensitive. An extension's attributes are
named `<schema urn>:<name>`; the core schema's URN in front of a name is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from workers.scim.target import CORE_GROUP, CORE_USER, ENTERPRISE_USER, ORGSTREAM_GROUP
from workers.store.directory_rows import GROUP, USER

AttributeType = Literal["string", "boolean", "integer", "dateTime", "reference", "complex"]


@dataclass(frozen=True, slots=True)
class Attribute:
    type: AttributeType
    case_exact: bool = False
    # Where the value lives when it is not a row of `directory_values`: a column of `r`.
    column: str | None = None
    # A complex attribute: its sub-attribute that a filter naming only the parent compares.
    default_sub: str | None = None


_E = ENTERPRISE_USER.lower()
_G = ORGSTREAM_GROUP.lower()

_COMMON: Final[dict[str, Attribute]] = {
    "id": Attribute("string", case_exact=True, column="r.scim_id"),
    "externalid": Attribute("string", case_exact=True),
    "meta.created": Attribute("dateTime", column="r.created"),
    "meta.lastmodified": Attribute("dateTime", column="r.last_modified"),
    "meta.resourcetype": Attribute("string", case_exact=True, column="r.kind"),
}

USER_ATTRIBUTES: Final[dict[str, Attribute]] = {
    **_COMMON,
    "username": Attribute("string"),
    "displayname": Attribute("string"),
    "name": Attribute("complex", default_sub="formatted"),
    "name.formatted": Attribute("string"),
    "active": Attribute("boolean"),
    "title": Attribute("string"),
    "emails": Attribute("complex", default_sub="value"),
    "emails.value": Attribute("string"),
    "emails.type": Attribute("string"),
    "emails.primary": Attribute("boolean"),
    "phonenumbers": Attribute("complex", default_sub="value"),
    "phonenumbers.value": Attribute("string"),
    "phonenumbers.type": Attribute("string"),
    f"{_E}:department": Attribute("string"),
    f"{_E}:manager": Attribute("complex", default_sub="value"),
    f"{_E}:manager.value": Attribute("string", case_exact=True),
}

GROUP_ATTRIBUTES: Final[dict[str, Attribute]] = {
    **_COMMON,
    "displayname": Attribute("string"),
    "members": Attribute("complex", default_sub="value"),
    "members.value": Attribute("string", case_exact=True),
    "members.display": Attribute("string"),
    "members.type": Attribute("string"),
    f"{_G}:parentexternalid": Attribute("string", case_exact=True),
    f"{_G}:parentid": Attribute("string", case_exact=True),
    f"{_G}:path": Attribute("string", case_exact=True),
    f"{_G}:order": Attribute("integer"),
}

ATTRIBUTES: Final = {USER: USER_ATTRIBUTES, GROUP: GROUP_ATTRIBUTES}
# The paths whose values compare exactly (kept as written in the index's `folded`).
CASE_EXACT: Final = {
    kind: frozenset(p for p, a in attributes.items() if a.case_exact and a.column is None)
    for kind, attributes in ATTRIBUTES.items()
}
CORE_SCHEMA: Final = {USER: CORE_USER, GROUP: CORE_GROUP}
EXTENSIONS: Final = {USER: (ENTERPRISE_USER,), GROUP: (ORGSTREAM_GROUP,)}


def path_of(kind: str, attr: str, sub_attr: str | None, uri: str | None) -> str:
    """The lower-case path of an attribute as a filter or a parameter names it."""
    name = attr.lower() + (f".{sub_attr.lower()}" if sub_attr else "")
    if uri is None or uri.lower() == CORE_SCHEMA[kind].lower():
        return name
    return f"{uri.lower()}:{name}"


def split_name(kind: str, text: str) -> tuple[str, str | None, str | None]:
    """`urn:…:User:department`, `name.formatted`, `userName` -> (attr, sub_attr, uri)."""
    uri = None
    for schema in (CORE_SCHEMA[kind], *EXTENSIONS[kind]):
        if text.lower().startswith(schema.lower() + ":"):
            uri, text = schema, text[len(schema) + 1 :]
            break
    attr, _, sub = text.partition(".")
    return attr, sub or None, uri
