"""The Feishu client against the simulated Feishu API: users and departments in the source
shape with the tenant's id types, what left or is out of scope read as gone, the walk paged,
the tenant token cached and renewed, throttling backed off."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from schemas.config.model import FeishuApp, Secret
from workers.errors import VendorRejected, VendorUnavailable
from workers.simulator.feishu import ROOT_ID, FeishuSimulator, SimUser
from workers.simulator.feishu_api import FeishuApi
from workers.vendors import http as vendor_http
from workers.vendors.feishu import FeishuDirectory
from workers.vendors.walk import WalkFailed, walk

APP_SECRET = "app-secret"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_http, "_BASE_BACKOFF", 0.01)


def simulator(users: int = 0) -> FeishuSimulator:
    sim = FeishuSimulator(
        app_id="cli_a1",
        app_secret=APP_SECRET,
        tenant_key="tk1",
        verification_token="vt",
        encrypt_key="ek",
        root_name="gamma",
    )
    sim.create_department("研发中心", ROOT_ID)
    rd = max(sim.departments)
    sim.create_department("平台组", rd)
    platform = max(sim.departments)
    sim.create_user(SimUser("zhangwei", "张伟", (ROOT_ID, rd), rd, "架构师", "zw@example.com"))
    for n in range(users):
        sim.create_user(SimUser(f"u{n:04d}", f"用户{n}", (platform,), platform))
    return sim


def client(api: FeishuApi, secret: str = APP_SECRET) -> FeishuDirectory:
    app = FeishuApp(app_id="cli_a1", tenant_key="tk1", verification_token=Secret("vt"))
    return FeishuDirectory(
        "http://feishu.test",
        app,
        secret,
        "gamma",
        transport=httpx.ASGITransport(app=api.app),
        qps=1000,
    )


async def test_user_and_department_come_back_in_the_source_shape() -> None:
    sim = simulator()
    directory = client(FeishuApi(sim))
    rd = f"D{min(d for d in sim.departments if d != ROOT_ID)}"
    user = await directory.get_user("zhangwei")
    assert user is not None
    assert (user.name, user.position, user.email) == ("张伟", "架构师", "zw@example.com")
    assert (user.main_department, set(user.departments)) == (rd, {"0", rd})
    assert user.active
    department = await directory.get_department(rd)
    assert department is not None
    assert (department.id, department.name, department.parent_id) == (rd, "研发中心", "0")
    root = await directory.get_department("0")
    assert root is not None
    assert (root.name, root.parent_id) == ("gamma", "")
    await directory.aclose()


async def test_a_leaver_one_out_of_scope_and_a_deleted_department_are_gone() -> None:
    sim = simulator()
    api = FeishuApi(sim)
    directory = client(api)
    sim.create_user(SimUser("lisi", "李四", (ROOT_ID,), ROOT_ID))
    sim.create_user(SimUser("wangfang", "王芳", (ROOT_ID,), ROOT_ID, status=2))
    sim.delete_user("zhangwei")
    sim.scope_out("lisi")
    assert await directory.get_user("zhangwei") is None
    assert await directory.get_user("lisi") is None
    frozen = await directory.get_user("wangfang")
    assert frozen is not None
    assert not frozen.active  # frozen: deactivated, still an employee
    assert await directory.get_department("D999") is None
    with pytest.raises(VendorRejected, match="not a Feishu id"):  # never another resource
        await directory.get_user("../departments/0")
    await directory.aclose()


async def test_the_walk_reads_every_page_and_no_user_twice() -> None:
    sim = simulator(users=120)  # three pages of one department's members
    api = FeishuApi(sim)
    directory = client(api)
    snapshot = await walk(directory)
    assert set(snapshot.users) == set(sim.users)
    assert set(snapshot.departments) == {"0", *(f"D{d}" for d in sim.departments if d != 1)}
    assert not any(c.path.startswith("/open-apis/contact/v3/users/u") for c in api.calls)
    member_pages = [c for c in api.calls if c.path.endswith("find_by_department")]
    assert len(member_pages) == len(sim.departments) + 2  # 120 users: 3 pages in one of them
    await directory.aclose()


async def test_the_token_is_cached_and_renewed_once_when_it_expires() -> None:
    api = FeishuApi(simulator())
    directory = client(api)
    await directory.get_user("zhangwei")
    await directory.get_user("zhangwei")
    token_calls = [c for c in api.calls if c.path.endswith("tenant_access_token/internal")]
    assert len(token_calls) == 1
    api.expire_tokens()
    assert await directory.get_user("zhangwei") is not None
    token_calls = [c for c in api.calls if c.path.endswith("tenant_access_token/internal")]
    assert len(token_calls) == 2
    await directory.aclose()


@pytest.mark.parametrize("answer", [99991400, 429])
async def test_throttling_is_backed_off_and_retried(answer: int) -> None:
    api = FeishuApi(simulator())
    directory = client(api)
    await directory.get_user("zhangwei")
    api.throttle(2, answer)
    assert await directory.get_user("zhangwei") is not None
    await directory.aclose()


async def test_throttling_that_lasts_is_retry_later_and_a_bad_secret_is_permanent() -> None:
    api = FeishuApi(simulator())
    directory = client(api)
    await directory.get_user("zhangwei")
    api.throttle(10)
    with pytest.raises(VendorUnavailable):
        await directory.get_user("zhangwei")
    await directory.aclose()
    refused = client(FeishuApi(simulator()), secret="wrong")
    with pytest.raises(VendorRejected, match="app secret invalid"):
        await refused.get_user("zhangwei")
    await refused.aclose()


def scripted(answers: dict[str, Any]) -> FeishuDirectory:
    """A client whose every call (the token's aside) gets the answer scripted for its path."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("tenant_access_token/internal"):
            return httpx.Response(200, json={"code": 0, "tenant_access_token": "t", "expire": 7200})
        for suffix, body in answers.items():
            if request.url.path.endswith(suffix):
                return httpx.Response(200, json=body(request) if callable(body) else body)
        return httpx.Response(404, json={"code": 404, "msg": "no such path"})

    app = FeishuApp(app_id="cli_a1", tenant_key="tk1", verification_token=Secret("vt"))
    return FeishuDirectory(
        "http://feishu.test", app, APP_SECRET, "gamma", transport=httpx.MockTransport(answer)
    )


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({}, VendorUnavailable),  # a proxy's 200 with no code: no answer
        ({"code": 0, "data": {}}, VendorUnavailable),  # success without the user
        ({"code": 0, "data": {"user": {"open_id": "ou_1", "name": "x"}}}, VendorRejected),
        ({"code": 41012, "msg": "user id invalid"}, VendorRejected),  # not "gone"
    ],
    ids=["no-code", "no-user", "no-user_id-permission", "user-id-invalid"],
)
async def test_an_answer_that_says_nothing_of_the_user_is_never_read_as_a_leaver(
    answer: dict[str, Any], error: type[Exception]
) -> None:
    directory = scripted({"/users/zhangwei": answer})
    with pytest.raises(error):
        await directory.get_user("zhangwei")
    await directory.aclose()


async def test_a_user_who_resigned_is_gone() -> None:
    resigned = {"user_id": "zhangwei", "name": "张伟", "status": {"is_resigned": True}}
    directory = scripted({"/users/zhangwei": {"code": 0, "data": {"user": resigned}}})
    assert await directory.get_user("zhangwei") is None
    await directory.aclose()


async def test_a_walk_that_cannot_see_the_root_or_whose_pages_loop_fails() -> None:
    out_of_scope = scripted(
        {"/departments/0/children": {"code": 40004, "msg": "no dept authority"}}
    )
    with pytest.raises(WalkFailed):
        await walk(out_of_scope)
    await out_of_scope.aclose()
    looping = scripted(
        {"/departments/0/children": {"code": 0, "data": {"has_more": True, "page_token": "p1"}}}
    )
    with pytest.raises(WalkFailed, match="came round again"):
        await walk(looping)
    await looping.aclose()
