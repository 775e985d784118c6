"""Provisioning into DingTalk: the same IdP sequences, DingTalk's rules (a mobile for every
user, no disabled state: a deactivated user is deleted there and served inactive), and its
errcodes as SCIM errors."""

from __future__ import annotations

import pytest

from tests.provision.conftest import CORE_USER, READ_TOKEN, Provisioned
from tests.provision.sequences import replay
from workers.simulator.dingtalk_api import DingTalkApi


async def test_the_entra_sequence(provisioned_dingtalk: Provisioned) -> None:
    await replay("entra", provisioned_dingtalk.send)

    sim = provisioned_dingtalk.sim
    assert "alice@contoso.example" not in sim.users  # deactivated (so deleted), then deleted
    bob = sim.users["bob@contoso.example"]
    assert (bob.name, bob.mobile, bob.departments) == ("Bob Chen", "+8613800001002", (1,))
    assert [d.name for d in sim.departments.values()] == [sim.root_name, "Sales"]


async def test_the_okta_sequence(provisioned_dingtalk: Provisioned) -> None:
    saved = await replay("okta", provisioned_dingtalk.send)

    sim = provisioned_dingtalk.sim
    assert "carol@example.com" not in sim.users  # no disabled state at DingTalk
    assert [d.name for d in sim.departments.values()] == [sim.root_name]
    served = await provisioned_dingtalk.send("GET", f"Users/{saved['carol']}", token=READ_TOKEN)
    assert served.status_code == 200
    assert served.json()["active"] is False  # the IdP reads back what it wrote

    again = await provisioned_dingtalk.patch(
        f"Users/{saved['carol']}", {"op": "replace", "value": {"active": True}}
    )
    assert again.status_code == 200, again.text
    assert sim.users["carol@example.com"].mobile == "13800001002"
    assert again.json()["active"] is True


async def test_a_user_without_a_mobile_is_refused_naming_it(
    provisioned_dingtalk: Provisioned,
) -> None:
    answer = await provisioned_dingtalk.send(
        "POST",
        "Users",
        {
            "schemas": [CORE_USER],
            "userName": "nomobile",
            "emails": [{"value": "n@x.cn"}],
        },
    )
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("phoneNumbers:")
    assert provisioned_dingtalk.sim.users == {}


@pytest.mark.parametrize(
    ("errcode", "status"), [(60104, 409), (60103, 400), (60121, 404), (90018, 429), (60011, 502)]
)
async def test_dingtalk_errcodes_as_scim_errors(
    provisioned_dingtalk: Provisioned, errcode: int, status: int
) -> None:
    api = provisioned_dingtalk.api
    assert isinstance(api, DingTalkApi)
    api.faults.fail_after("/topapi/v2/user/create", 0, errcode)

    answer = await provisioned_dingtalk.send(
        "POST",
        "Users",
        {
            "schemas": [CORE_USER],
            "userName": "dan",
            "phoneNumbers": [{"value": "13900000000"}],
        },
    )

    assert answer.status_code == status
    assert str(errcode) in answer.json()["detail"]
    assert provisioned_dingtalk.sim.users == {}


async def test_an_app_without_the_permission_is_told_so(provisioned_dingtalk: Provisioned) -> None:
    api = provisioned_dingtalk.api
    assert isinstance(api, DingTalkApi)
    api.writes.writes_allowed = False

    answer = await provisioned_dingtalk.send(
        "POST",
        "Users",
        {
            "schemas": [CORE_USER],
            "userName": "eve",
            "phoneNumbers": [{"value": "13900000001"}],
        },
    )

    assert answer.status_code == 502
    assert "contact-maintenance" in answer.json()["detail"]
