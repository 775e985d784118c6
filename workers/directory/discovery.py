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


def schemas(base: str) -> list[dict[str, Any]]:
    documents = [
        model.to_schema().model_dump(scim_ctx=_RESPONSE) for model in (User, EnterpriseUser, Group)
    ]
    documents.append(dict(_GROUP_EXTENSION))
    for document in documents:
        document["meta"] = {
            "resourceType": "Schema",
            "location": f"{base}/Schemas/{document['id']}",
        }
    return documents


def resource_types(base: str) -> list[dict[str, Any]]:
    user = ResourceType.from_resource(User[EnterpriseUser]).model_dump(scim_ctx=_RESPONSE)
    group = ResourceType.from_resource(Group).model_dump(scim_ctx=_RESPONSE)
    group["schemaExtensions"] = [{"schema": ORGSTREAM_GROUP, "required": False}]
    for document in (user, group):
        document["meta"] = {
            "resourceType": "ResourceType",
            "location": f"{base}/ResourceTypes/{document['id']}",
        }
    return [user, group]


def service_provider_config(base: str, max_results: int) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": False},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The tenant's directory_token, as `Authorization: Bearer …`.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }
