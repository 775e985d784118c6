"""The discovery documents (RFC 7644 §4): what this server supports, its resource types and
their schemas, built from scim2-models' descriptions of the standard schemas plus the Group
extension that carries the hierarchy (docs/directory-server.md)."""

from __future__ import annotations

from typing import Any, Final

from scim2_models import Context, EnterpriseUser, Group, ResourceType, User

from workers.scim.target import ORGSTREAM_GROUP

_RESPONSE: Final = Context.RESOURCE_QUERY_RESPONSE
SCHEMA_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def _attribute(name: str, kind: str, description: str, case_exact: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "multiValued": False,
        "description": description,
        "required": False,
        "caseExact": case_exact,
        "mutability": "readOnly",
        "returned": "default",
        "uniqueness": "none",
    }


_GROUP_EXTENSION: Final = {
    "schemas": [SCHEMA_SCHEMA],
    "id": ORGSTREAM_GROUP,
    "name": "OrgstreamGroup",
    "description": "Where a department sits in the vendor's hierarchy.",
    "attributes": [
        _attribute("parentExternalId", "string", "The parent department's externalId."),
        _attribute("parentId", "string", "The parent department's Group id."),
        _attribute("path", "string", "Department ids from the root, as /1/12/15."),
        _attribute("order", "integer", "The department's order among its siblings."),
    ],
}


# What a tenant that takes writes can hold: the vendor's fields, and what orgstream keeps of
# the IdP's own (externalId, userName, the name's parts). Sub-attributes listed where only some
# are held; the enterprise extension's department is the main department's name, derived.
_WRITABLE: Final[dict[str, dict[str, tuple[str, ...] | None]]] = {
    "urn:ietf:params:scim:schemas:core:2.0:User": {
        "userName": None, "name": ("formatted", "givenName", "familyName"),
        "displayName": None, "title": None, "active": None,
        "emails": ("value", "type", "primary"), "phoneNumbers": ("value", "type"),
        "groups": None, "externalId": None,
    },
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
        "department": None, "manager": ("value", "$ref"),
    },
    "urn:ietf:params:scim:schemas:core:2.0:Group": {
        "displayName": None, "members": None, "externalId": None,
    },
}  # fmt: skip
_DERIVED: Final = frozenset({"department"})
# WeCom needs a mobile or an email, DingTalk a mobile; a schema cannot say "one of", so for
# WeCom the email is the one it calls required. A user always has a name and an enabled state.
_REQUIRED: Final = frozenset({"emails", "displayName", "active", "name"})


def schemas(
    base: str, writable: bool = False, needs_mobile: bool = False, idp_view: bool = False
) -> list[dict[str, Any]]:
    """`writable`: the schemas of a tenant that takes writes, trimmed to what it can hold;
    `needs_mobile`: its vendor requires a mobile rather than an email (DingTalk); `idp_view`:
    as the provisioning token sees them, without what only orgstream derives (the Group
    extension, a member's `display`)."""
    documents = [
        model.to_schema().model_dump(scim_ctx=_RESPONSE) for model in (User, EnterpriseUser, Group)
    ]
    if writable:
        required = _REQUIRED - {"emails"} | {"phoneNumbers"} if needs_mobile else _REQUIRED
        documents = [_held(document, required, idp_view) for document in documents]
    if not idp_view:
        documents.append(dict(_GROUP_EXTENSION))
    for document in documents:
        document["meta"] = {
            "resourceType": "Schema",
            "location": f"{base}/Schemas/{document['id']}",
        }
    return documents


def _held(document: dict[str, Any], required: frozenset[str], idp_view: bool) -> dict[str, Any]:
    kept = _WRITABLE[document["id"]]
    attributes = []
    for attribute in document["attributes"]:
        name = attribute["name"]
        if name not in kept:
            continue
        attribute = dict(attribute)
        subs = kept[name]
        if subs is not None and attribute.get("subAttributes"):
            attribute["subAttributes"] = [
                s for s in attribute["subAttributes"] if s["name"] in subs
            ]
        if name in _DERIVED:
            attribute["mutability"] = "readOnly"
        if name == "members":  # a member is shown with the user's own name, to readers
            attribute["subAttributes"] = [
                {**sub, "mutability": "readOnly"} if sub["name"] == "display" else sub
                for sub in attribute.get("subAttributes", [])
                if not (idp_view and sub["name"] == "display")
            ]
        if name in required:
            attribute["required"] = True
        if name in required and attribute.get("subAttributes"):
            attribute["subAttributes"] = [
                {**sub, "required": sub["name"] == "value"} for sub in attribute["subAttributes"]
            ]
        attributes.append(attribute)
    return {**document, "attributes": attributes}


def resource_types(base: str, idp_view: bool = False) -> list[dict[str, Any]]:
    user = ResourceType.from_resource(User[EnterpriseUser]).model_dump(scim_ctx=_RESPONSE)
    group = ResourceType.from_resource(Group).model_dump(scim_ctx=_RESPONSE)
    if not idp_view:
        group["schemaExtensions"] = [{"schema": ORGSTREAM_GROUP, "required": False}]
    for document in (user, group):
        document["meta"] = {
            "resourceType": "ResourceType",
            "location": f"{base}/ResourceTypes/{document['id']}",
        }
    return [user, group]


def service_provider_config(base: str, max_results: int, writable: bool = False) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": writable},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The tenant's directory_token (reads), or its provisioning_token"
                " (reads and writes), as `Authorization: Bearer …`.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }
