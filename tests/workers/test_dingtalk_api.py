"""The DingTalk client against the simulated DingTalk API (in process): shapes, not-found,
token renewal, throttling, and what it notes for the sync history."""

from __future__ import annotations

import secrets

import httpx
import pytest

from schemas.record import NO_PARENT
from workers.attempts import Attempts, recording
from workers.errors import VendorRejected, VendorUnavailable
from workers.simulator.dingtalk import ROOT_ID, DingTalkSimulator, SimUser
from workers.simulator.dingtalk_api import DingTalkApi
from workers.vendors import http as vendor_http
from workers.vendors.dingtalk import DingTalkDirectory


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_http, "_BASE_BACKOFF", 0.01)


def simulator() -> DingTalkSimulator:
    sim = DingTalkSimulator(
        corp_id="dingcorp",
        app_key="dingappkey",
        app_secret=APP_SECRET,
        token="tok",
        aes_key="PmXxzdTxF1GShAbPOwFyKedNiamfzcaGHyusd3PgBBw",
    )
    sim.create_department("研发中心", ROOT_ID)
    rd = max(sim.departments)
    sim.create_user(SimUser("zhangwei", "张伟", (ROOT_ID, rd), rd, "架构师", "zw@example.com"))
    return sim


APP_SECRET = "app-secret"


def client(api: DingTalkApi, secret: str = APP_SECRET) -> DingTalkDirectory:
    transport = httpx.ASGITransport(app=api.app)
    return DingTalkDirectory(
        "http://dingtalk.test", "dingappkey", secret, transport=transport, qps=1000
    )


async def test_user_and_department_come_back_in_the_source_shape() -> None:
    sim = simulator()
    directory = client(DingTalkApi(sim))
    rd = max(sim.departments)
    user = await directory.get_user("zhangwei")
    assert user is not None
    assert (user.name, user.position, user.email) == ("张伟", "架构师", "zw@example.com")
    assert user.main_department == str(rd)
    assert set(user.departments) == {str(ROOT_ID), str(rd)}
    assert user.active
    department = await directory.get_department(str(rd))
    assert department is not None
    assert (department.name, department.parent_id) == ("研发中心", str(ROOT_ID))
    root = await directory.get_department(str(ROOT_ID))
    assert root is not None
    assert root.parent_id == NO_PARENT
    await directory.aclose()


async def test_not_found_at_the_source_is_none() -> None:
    directory = client(DingTalkApi(simulator()))
    assert await directory.get_user("nobody") is None
    assert await directory.get_department("999") is None
    await directory.aclose()


async def test_token_is_cached_and_renewed_once_when_it_expires() -> None:
    api = DingTalkApi(simulator())
    directory = client(api)
    await directory.get_user("zhangwei")
    await directory.get_user("zhangwei")
    assert [c.path for c in api.calls].count("/gettoken") == 1
    api.expire_tokens()
    with recording(Attempts()) as attempts:
        assert await directory.get_user("zhangwei") is not None
    assert [c.path for c in api.calls].count("/gettoken") == 2
    assert attempts.notes == ["DingTalk /topapi/v2/user/get errcode 42001: token renewed"]
    await directory.aclose()


@pytest.mark.parametrize("answer", [90018, 90002, 90019, 429])
async def test_throttling_is_backed_off_and_retried(answer: int) -> None:
    api = DingTalkApi(simulator())
    directory = client(api)
    api.throttle(2, answer)
    with recording(Attempts()) as attempts:
        assert await directory.get_user("zhangwei") is not None
    assert attempts.retries == 2
    assert all("rate limited" in n or "429" in n for n in attempts.notes)
    await directory.aclose()


async def test_throttling_that_lasts_becomes_retry_later() -> None:
    api = DingTalkApi(simulator())
    directory = client(api)
    api.throttle(10)
    with pytest.raises(VendorUnavailable, match="90018"):
        await directory.get_user("zhangwei")
    await directory.aclose()


async def test_wrong_app_secret_is_a_permanent_error() -> None:
    directory = client(DingTalkApi(simulator()), secret=secrets.token_hex(4))
    with pytest.raises(VendorRejected) as caught:
        await directory.get_user("zhangwei")
    assert caught.value.errcode == 40089
    await directory.aclose()
