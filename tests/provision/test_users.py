"""Users written through the tenant's SCIM URL land in the (simulated) WeCom directory, and
the next GET returns what the IdP wrote."""

from __future__ import annotations

from tests.provision.conftest import CORE_USER, READ_TOKEN, Provisioned
from workers.simulator.wecom_api import WeComApi
from workers.store.history import HistoryQuery

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_a_created_user_is_at_the_vendor_and_reads_back_as_written(
    provisioned: Provisioned,
) -> None:
    created = await provisioned.create_user(
        "alice@corp.example",
        externalId="idp-0001",
        displayName="Alice Liu",
        name={"givenName": "Alice", "familyName": "Liu"},
        emails=[{"value": "alice@corp.example", "type": "work", "primary": True}],
        phoneNumbers=[{"value": "+86 138 0000 0001", "type": "mobile"}],
        title="Engineer",
    )

    at_vendor = provisioned.sim.users["alice@corp.example"]
    assert (at_vendor.name, at_vendor.mobile, at_vendor.email) == (
        "Alice Liu", "+8613800000001", "alice@corp.example",
    )  # fmt: skip
    assert (at_vendor.position, at_vendor.departments, at_vendor.status) == ("Engineer", (1,), 1)
    read = await provisioned.send("GET", f"Users/{created['id']}", token=READ_TOKEN)
    assert read.status_code == 200
    served = read.json()
    assert served == created | {"meta": served["meta"]}
    assert served["userName"] == "alice@corp.example"
    assert served["externalId"] == "idp-0001"
    assert served["name"]["givenName"] == "Alice"
    assert served["active"] is True
    assert read.headers["ETag"] == served["meta"]["version"]


async def test_entra_style_patches_change_the_vendor_user(provisioned: Provisioned) -> None:
    boss = await provisioned.create_user("bob", displayName="Bob", emails=[{"value": "b@x.cn"}])
    alice = await provisioned.create_user(
        "alice", displayName="Alice", emails=[{"value": "a@x.cn"}]
    )

    answer = await provisioned.patch(
        f"Users/{alice['id']}",
        {"op": "Replace", "path": "title", "value": "Lead"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alice@x.cn"},
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": boss["id"]},
    )
    assert answer.status_code == 200, answer.text
    user = provisioned.sim.users["alice"]
    assert (user.position, user.email) == ("Lead", "alice@x.cn")
    assert isinstance(provisioned.api, WeComApi)
    assert provisioned.api.leaders["alice"] == ["bob"]
    assert answer.json()[ENTERPRISE]["manager"]["value"] == boss["id"]

    answer = await provisioned.patch(
        f"Users/{alice['id']}", {"op": "Replace", "path": "active", "value": "False"}
    )
    assert answer.status_code == 200, answer.text
    assert provisioned.sim.users["alice"].status == 2  # disabled, not gone
    assert answer.json()["active"] is False


async def test_okta_style_put_and_deactivation(provisioned: Provisioned) -> None:
    carol = await provisioned.create_user(
        "carol@example.com",
        name={"givenName": "Carol", "familyName": "Wang"},
        emails=[{"primary": True, "value": "carol@example.com", "type": "work"}],
        active=True,
    )
    assert provisioned.sim.users["carol@example.com"].name == "Carol Wang"

    put = {**carol, "title": "Manager", "displayName": "Carol W."}
    answer = await provisioned.send("PUT", f"Users/{carol['id']}", put)
    assert answer.status_code == 200, answer.text
    assert provisioned.sim.users["carol@example.com"].name == "Carol W."
    assert provisioned.sim.users["carol@example.com"].position == "Manager"

    answer = await provisioned.patch(
        f"Users/{carol['id']}", {"op": "replace", "value": {"active": False}}
    )
    assert answer.status_code == 200, answer.text
    assert provisioned.sim.users["carol@example.com"].status == 2


async def test_what_the_vendor_cannot_hold_costs_no_vendor_call(provisioned: Provisioned) -> None:
    dave = await provisioned.create_user("dave", emails=[{"value": "d@x.cn"}])
    calls = len(provisioned.api.calls)

    answer = await provisioned.patch(
        f"Users/{dave['id']}", {"op": "replace", "path": "externalId", "value": "okta-42"}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["externalId"] == "okta-42"
    assert "user/update" not in provisioned.api.calls[calls:]
    found = await provisioned.client.get(
        "http://directory.test/scim/v2/acme/Users",
        params={"filter": 'externalId eq "okta-42"'},
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
    )
    assert [r["id"] for r in found.json()["Resources"]] == [dave["id"]]


async def test_a_deleted_user_is_gone_from_the_vendor(provisioned: Provisioned) -> None:
    erin = await provisioned.create_user("erin", emails=[{"value": "e@x.cn"}])

    answer = await provisioned.send("DELETE", f"Users/{erin['id']}")

    assert answer.status_code == 204
    assert "erin" not in provisioned.sim.users
    read = await provisioned.send("GET", f"Users/{erin['id']}", token=READ_TOKEN)
    assert read.status_code == 404  # deleted by the IdP: gone for it, not kept as a leaver


async def test_the_userid_template_and_what_it_refuses(provisioned: Provisioned) -> None:
    answer = await provisioned.send(
        "POST",
        "Users",
        {"schemas": [CORE_USER], "userName": "名字", "emails": [{"value": "n@x.cn"}]},
    )
    assert answer.status_code == 400
    assert answer.json()["scimType"] == "invalidValue"
    assert "userName" in answer.json()["detail"]

    answer = await provisioned.send("POST", "Users", {"schemas": [CORE_USER]})
    assert answer.status_code == 400
    assert "userName: required" in answer.json()["detail"]
    assert provisioned.sim.users == {}


async def test_every_write_is_in_the_history(provisioned: Provisioned) -> None:
    await provisioned.create_user("fay", emails=[{"value": "f@x.cn"}])
    await provisioned.send(
        "POST",
        "Users",
        {"schemas": [CORE_USER], "userName": "gus"},  # no mobile, no email
    )

    rows = await provisioned.history.query(HistoryQuery(tenant="acme"))
    by_outcome = {row.outcome: row for row in rows}
    assert by_outcome["applied"].operations == ["user/create fay -> ok"]
    assert by_outcome["applied"].origin == "provisioning"
    refused = by_outcome["refused"]
    assert refused.operations == [
        "user/create gus -> vendor errcode 60129: mobile and email can not be both empty"
    ]
    assert (refused.error or "").startswith("400 ")


async def test_an_update_sends_only_what_changed(provisioned: Provisioned) -> None:
    """What orgstream does not know of a user (a mobile set in the vendor's console since, or
    kept off the feed) is not overwritten by a change of something else."""
    from dataclasses import replace

    hal = await provisioned.create_user("hal", emails=[{"value": "hal@x.cn"}])
    sim = provisioned.sim
    sim.users["hal"] = replace(sim.users["hal"], mobile="13700000009")  # behind orgstream's back

    answer = await provisioned.patch(
        f"Users/{hal['id']}", {"op": "replace", "path": "title", "value": "Ops"}
    )

    assert answer.status_code == 200, answer.text
    assert (sim.users["hal"].position, sim.users["hal"].mobile) == ("Ops", "13700000009")


async def test_what_is_read_back_goes_to_the_directory_feed(provisioned: Provisioned) -> None:
    """The SCIM sinks follow a provisioned change from the feed, callback or not."""
    await provisioned.create_user("jo", displayName="Jo", emails=[{"value": "jo@x.cn"}])

    (record,) = [r for r in provisioned.published if r.id == "jo"]
    assert record.origin == "provisioning"
    assert record.user is not None
    assert record.user.name == "Jo"
