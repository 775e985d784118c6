"""The vendor's errcodes come back to the IdP as the SCIM errors it knows how to act on, and
the tokens decide who may write."""

from __future__ import annotations

import pytest

from tests.provision.conftest import CORE_USER, READ_TOKEN, Provisioned


def user(user_name: str, mobile: str = "", email: str = "") -> dict[str, object]:
    body: dict[str, object] = {"schemas": [CORE_USER], "userName": user_name}
    if mobile:
        body["phoneNumbers"] = [{"value": mobile, "type": "mobile"}]
    if email:
        body["emails"] = [{"value": email, "type": "work"}]
    return body


async def test_taken_values_are_409_uniqueness(provisioned: Provisioned) -> None:
    await provisioned.create_user("first", phoneNumbers=[{"value": "13800000001"}])

    taken_mobile = await provisioned.send("POST", "Users", user("second", mobile="13800000001"))
    assert taken_mobile.status_code == 409
    assert taken_mobile.json()["scimType"] == "uniqueness"
    assert "60104" in taken_mobile.json()["detail"]

    taken_userid = await provisioned.send("POST", "Users", user("first", email="x@y.cn"))
    assert taken_userid.status_code == 409
    assert taken_userid.json()["scimType"] == "uniqueness"


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (user("bad-mobile", mobile="call-me"), "60103"),
        (user("bad-email", email="nobody"), "60105"),
        (user("nothing"), "60129"),
    ],
)
async def test_refused_values_are_400_invalid_value(
    provisioned: Provisioned, body: dict[str, object], errcode: str
) -> None:
    answer = await provisioned.send("POST", "Users", body)

    assert answer.status_code == 400
    assert answer.json()["scimType"] == "invalidValue"
    assert errcode in answer.json()["detail"]


async def test_what_the_vendor_no_longer_has_is_404(provisioned: Provisioned) -> None:
    gone = await provisioned.create_user("gone", emails=[{"value": "g@x.cn"}])
    provisioned.api.faults.fail_after("user/update", 0, 60111)

    answer = await provisioned.patch(f"Users/{gone['id']}", {"op": "replace", "path": "title",
                                                             "value": "x"})  # fmt: skip

    assert answer.status_code == 404
    assert "60111" in answer.json()["detail"]


@pytest.mark.parametrize("errcode", [45009, 45033, 6000])
async def test_throttling_and_conflicts_are_429_or_503_with_retry_after(
    provisioned: Provisioned, errcode: int
) -> None:
    provisioned.api.faults.fail_after("user/create", 0, errcode)

    answer = await provisioned.send("POST", "Users", user("later", email="l@x.cn"))

    assert answer.status_code in (429, 503)
    assert int(answer.headers["Retry-After"]) >= 1
    assert "later" not in provisioned.sim.users


@pytest.mark.parametrize(("errcode", "says"), [(60020, "trusted IP"), (48002, "contact-sync")])
async def test_a_vendor_that_refuses_us_is_502_saying_why(
    provisioned: Provisioned, errcode: int, says: str
) -> None:
    provisioned.api.faults.fail_after("user/create", 0, errcode)

    answer = await provisioned.send("POST", "Users", user("blocked", email="b@x.cn"))

    assert answer.status_code == 502
    assert says in answer.json()["detail"]


async def test_tokens_decide_who_writes(provisioned: Provisioned) -> None:
    read_only = await provisioned.send("POST", "Users", user("r", email="r@x.cn"), READ_TOKEN)
    assert read_only.status_code == 403
    wrong = await provisioned.send("POST", "Users", user("w", email="w@x.cn"), "not-a-token")
    assert wrong.status_code == 401
    assert "WWW-Authenticate" in wrong.headers
    assert provisioned.sim.users == {}
    reads = await provisioned.send("GET", "Users")  # the write token reads too
    assert reads.status_code == 200


async def test_a_body_that_is_no_resource_is_400(provisioned: Provisioned) -> None:
    answer = await provisioned.client.post(
        "http://directory.test/scim/v2/acme/Users",
        content=b"[1, 2]",
        headers={"Authorization": "Bearer acme-provisioning-token"},
    )
    assert answer.status_code == 400
    patch = await provisioned.patch("Users/00000000-0000-0000-0000-000000000000", {"op": "jump"})
    assert patch.status_code == 404


async def test_a_secret_the_vendor_refuses_is_502_not_the_idps_fault(
    provisioned: Provisioned,
) -> None:
    provisioned.api.faults.fail_after("user/create", 0, 40001)

    answer = await provisioned.send("POST", "Users", user("frank", email="f@x.cn"))

    assert answer.status_code == 502
    assert "credentials" in answer.json()["detail"]
