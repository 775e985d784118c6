"""PATCH as Entra ID and Okta send it, applied to a resource as served."""

from __future__ import annotations

from typing import Any

import pytest

from workers.provision.errors import ProvisionError
from workers.provision.patch import apply_patch

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER = {
    "id": "u1",
    "userName": "alice",
    "active": True,
    "name": {"formatted": "Alice Liu"},
    "emails": [{"value": "a@x.cn", "type": "work", "primary": True}],
    ENTERPRISE: {"department": "Sales"},
}


def patched(*operations: dict[str, Any], resource: dict[str, Any] | None = None) -> Any:
    return apply_patch(resource or USER, {"Operations": list(operations)})


def test_op_names_in_any_case_and_active_as_entra_sends_it() -> None:
    assert patched({"op": "Replace", "path": "active", "value": "False"})["active"] == "False"
    assert patched({"op": "REPLACE", "path": "userName", "value": "b"})["userName"] == "b"


def test_without_a_path_the_value_names_the_attributes() -> None:
    result = patched({"op": "replace", "value": {"active": False, "name.givenName": "Alice"}})
    assert result["active"] is False
    assert result["name"] == {"formatted": "Alice Liu", "givenName": "Alice"}
    extension = patched({"op": "add", "value": {ENTERPRISE: {"employeeNumber": "7"}}})[ENTERPRISE]
    assert extension == {"department": "Sales", "employeeNumber": "7"}


def test_a_value_filtered_path_changes_or_makes_the_element() -> None:
    work = patched({"op": "replace", "path": 'emails[type eq "work"].value', "value": "b@x.cn"})
    assert work["emails"] == [{"value": "b@x.cn", "type": "work", "primary": True}]
    home = patched({"op": "add", "path": 'emails[type eq "home"].value', "value": "h@x.cn"})
    assert home["emails"][1] == {"type": "home", "value": "h@x.cn"}


def test_members_removed_by_filter_or_by_value_list_and_added_once() -> None:
    group = {"displayName": "G", "members": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}
    by_filter = patched({"op": "remove", "path": 'members[value eq "a"]'}, resource=group)
    assert [m["value"] for m in by_filter["members"]] == ["b", "c"]
    by_list = patched(
        {"op": "Remove", "path": "members", "value": [{"value": "b"}]}, resource=group
    )
    assert [m["value"] for m in by_list["members"]] == ["a", "c"]
    added = patched({"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "d"}]},
                    resource=group)  # fmt: skip
    assert [m["value"] for m in added["members"]] == ["a", "b", "c", "d"]
    assert "members" not in patched({"op": "remove", "path": "members"}, resource=group)


def test_an_extension_attribute_by_its_urn() -> None:
    result = patched({"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "u2"})
    assert result[ENTERPRISE]["manager"] == "u2"
    assert USER[ENTERPRISE] == {"department": "Sales"}  # the served resource is not touched


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"Operations": []}, "invalidSyntax"),
        ({}, "invalidSyntax"),
        ({"Operations": [{"op": "jump", "path": "a"}]}, "invalidSyntax"),
        ({"Operations": [{"op": "add", "path": 7, "value": 1}]}, "invalidPath"),
        ({"Operations": [{"op": "replace", "value": "not an object"}]}, "noTarget"),
        ({"Operations": [{"op": "remove"}]}, "noTarget"),
        ({"Operations": ["add"]}, "invalidSyntax"),
    ],
)
def test_what_is_no_patch_is_a_400(body: dict[str, Any], scim_type: str) -> None:
    with pytest.raises(ProvisionError) as refused:
        apply_patch(USER, body)
    assert (refused.value.status, refused.value.scim_type) == (400, scim_type)


def test_a_whole_extension_by_its_urn() -> None:
    result = patched({"op": "add", "path": ENTERPRISE, "value": {"manager": {"value": "u2"}}})
    assert result[ENTERPRISE] == {"department": "Sales", "manager": {"value": "u2"}}
    assert ENTERPRISE not in patched({"op": "remove", "path": ENTERPRISE})


def test_odd_shapes_and_filters_it_does_not_take_are_400s_not_500s() -> None:
    with pytest.raises(ProvisionError) as refused:
        patched({"op": "replace", "path": 'emails[type eq "work" and primary eq true].value',
                 "value": "x"})  # fmt: skip
    assert refused.value.scim_type == "invalidFilter"
    strings = patched({"op": "remove", "path": "schemas", "value": [{"value": "x"}]},
                      resource={"schemas": ["urn:x"]})  # fmt: skip
    assert strings["schemas"] == ["urn:x"]
    one = {"displayName": "G", "members": [{"value": "a"}, {"value": "b"}]}
    left = patched({"op": "remove", "path": "members", "value": {"value": "a"}}, resource=one)
    assert left["members"] == [{"value": "b"}]  # one object, not the whole list


def test_a_core_attribute_by_its_full_urn() -> None:
    result = patched({"op": "replace", "value": "Alice L.",
                      "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName"})  # fmt: skip
    assert result["userName"] == "Alice L."
    assert "urn:ietf:params:scim:schemas:core:2.0:User" not in result
