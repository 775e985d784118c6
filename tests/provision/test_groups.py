"""Groups written through the tenant's SCIM URL are WeCom departments; their members are the
users' department lists at the vendor."""

from __future__ import annotations

from typing import Any

from tests.provision.conftest import CORE_GROUP, READ_TOKEN, WRITE_TOKEN, Provisioned


async def create_group(provisioned: Provisioned, name: str, **attributes: Any) -> dict[str, Any]:
    body = {"schemas": [CORE_GROUP], "displayName": name, **attributes}
    answer = await provisioned.send("POST", "Groups", body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def department_named(provisioned: Provisioned, name: str) -> int:
    return next(d.id for d in provisioned.sim.departments.values() if d.name == name)


async def test_groups_become_departments_placed_by_path(provisioned: Provisioned) -> None:
    sales = await create_group(provisioned, "Sales", externalId="okta-g1")
    east = await create_group(provisioned, "Sales/East")

    sales_id, east_id = (
        department_named(provisioned, "Sales"),
        department_named(provisioned, "East"),
    )
    assert provisioned.sim.departments[sales_id].parent_id == 1
    assert provisioned.sim.departments[east_id].parent_id == sales_id
    assert sales["externalId"] == "okta-g1"
    assert east["displayName"] == "Sales/East"  # as the IdP wrote it, not the vendor's "East"

    answer = await provisioned.send("POST", "Groups", {"schemas": [CORE_GROUP],
                                                       "displayName": "Nowhere/West"})  # fmt: skip
    assert answer.status_code == 400
    assert "'Nowhere'" in answer.json()["detail"]


async def test_members_added_and_removed_in_both_dialects(provisioned: Provisioned) -> None:
    ann = await provisioned.create_user("ann", emails=[{"value": "ann@x.cn"}])
    ben = await provisioned.create_user("ben", emails=[{"value": "ben@x.cn"}])
    team = await create_group(provisioned, "Team", members=[{"value": ann["id"]}])
    team_id = department_named(provisioned, "Team")
    assert provisioned.sim.users["ann"].departments == (team_id,)  # out of the root

    answer = await provisioned.patch(
        f"Groups/{team['id']}",
        {"op": "Add", "path": "members", "value": [{"value": ben["id"]}]},
    )
    assert answer.status_code == 200, answer.text
    assert provisioned.sim.users["ben"].departments == (team_id,)
    served = await provisioned.send("GET", f"Groups/{team['id']}", token=READ_TOKEN)
    assert sorted(m["value"] for m in served.json()["members"]) == sorted([ann["id"], ben["id"]])

    # Entra removes by a value list, Okta by a filter on the path.
    await provisioned.patch(
        f"Groups/{team['id']}", {"op": "Remove", "path": "members", "value": [{"value": ann["id"]}]}
    )
    await provisioned.patch(
        f"Groups/{team['id']}", {"op": "remove", "path": f'members[value eq "{ben["id"]}"]'}
    )
    assert provisioned.sim.users["ann"].departments == (1,)  # no department left: the root
    assert provisioned.sim.users["ben"].departments == (1,)
    served = await provisioned.send("GET", f"Groups/{team['id']}", token=READ_TOKEN)
    assert "members" not in served.json()


async def test_rename_and_delete_a_department(provisioned: Provisioned) -> None:
    ops = await create_group(provisioned, "Ops")
    ops_id = department_named(provisioned, "Ops")

    answer = await provisioned.patch(
        f"Groups/{ops['id']}", {"op": "replace", "value": {"id": ops["id"], "displayName": "SRE"}}
    )
    assert answer.status_code == 200, answer.text
    assert provisioned.sim.departments[ops_id].name == "SRE"
    assert answer.json()["displayName"] == "SRE"

    member = await provisioned.create_user("cy", emails=[{"value": "cy@x.cn"}])
    await provisioned.patch(f"Groups/{ops['id']}", {"op": "add", "path": "members",
                                                   "value": [{"value": member["id"]}]})  # fmt: skip
    answer = await provisioned.send("DELETE", f"Groups/{ops['id']}")
    assert answer.status_code == 409
    assert "60005" in answer.json()["detail"]  # the vendor's reason, said

    await provisioned.patch(f"Groups/{ops['id']}", {"op": "remove", "path": "members"})
    answer = await provisioned.send("DELETE", f"Groups/{ops['id']}")
    assert answer.status_code == 204
    assert ops_id not in provisioned.sim.departments
    gone = await provisioned.send("GET", f"Groups/{ops['id']}", token=READ_TOKEN)
    assert gone.status_code == 404


async def test_a_group_with_an_unknown_member_makes_nothing(provisioned: Provisioned) -> None:
    body = {"schemas": [CORE_GROUP], "displayName": "Ghosts",
            "members": [{"value": "00000000-0000-0000-0000-000000000000"}]}  # fmt: skip

    answer = await provisioned.send("POST", "Groups", body)

    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("members:")
    assert [d.name for d in provisioned.sim.departments.values()] == [provisioned.sim.root_name]


async def test_the_idp_reads_what_it_can_write_and_a_reader_sees_the_hierarchy(
    provisioned: Provisioned,
) -> None:
    """The provisioning token's view holds what an IdP writes, so a GET after a PATCH equals
    what it sent; the read token's view keeps the derived parts (where the department sits,
    each member's name)."""
    ann = await provisioned.create_user("ann", emails=[{"value": "ann@x.cn"}])
    member = {"value": ann["id"], "type": "User"}
    team = await create_group(provisioned, "Team", members=[member])
    extension = "urn:ietf:params:scim:schemas:extension:orgstream:2.0:Group"

    as_written = (await provisioned.send("GET", f"Groups/{team['id']}")).json()
    assert extension not in as_written
    assert extension not in as_written["schemas"]
    assert [{k: m[k] for k in ("value", "type")} for m in as_written["members"]] == [member]
    assert all("display" not in m for m in as_written["members"])
    assert team["members"] == as_written["members"]  # the write's answer is the same view

    as_read = (await provisioned.send("GET", f"Groups/{team['id']}", token=READ_TOKEN)).json()
    assert as_read[extension]["parentExternalId"].endswith(":dept:1")
    assert [m["display"] for m in as_read["members"]] == ["ann"]

    schema_ids: dict[str, set[str]] = {}
    member_fields: dict[str, list[str]] = {}
    for token in (WRITE_TOKEN, READ_TOKEN):
        documents = (await provisioned.send("GET", "Schemas", token=token)).json()["Resources"]
        schema_ids[token] = {d["id"] for d in documents}
        group = next(d for d in documents if d["id"] == CORE_GROUP)
        members = next(a for a in group["attributes"] if a["name"] == "members")
        member_fields[token] = sorted(s["name"] for s in members["subAttributes"])
    assert extension not in schema_ids[WRITE_TOKEN]
    assert extension in schema_ids[READ_TOKEN]
    assert "display" not in member_fields[WRITE_TOKEN]
    assert "display" in member_fields[READ_TOKEN]
