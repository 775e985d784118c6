"""The Directory pages over a mirror: the tree with sizes, search by the beginning of a name or
by id, a department's members, a user's page with the SCIM ids and last changes."""

from __future__ import annotations

import asyncio
import dataclasses
import re

from starlette.testclient import TestClient

from schemas.record import DepartmentState, encode_record
from tests.console.conftest import VIEWER_TOKEN, log_in
from tests.schemas.test_record import a_department, a_user
from workers.directory.ids import user_id
from workers.store.mirror import open_mirror
from workers.store.target_ledger import StoredLedger, open_ledger_database

TARGET = "http://127.0.0.1:8000/v2"  # the default [scim] target of the test settings


async def mirrored(store_url: str) -> None:
    mirror = open_mirror(store_url)
    ledgers = open_ledger_database(store_url)
    try:
        for department in (
            DepartmentState("1", "总部", ""),
            DepartmentState("7", "研发中心", "1"),
            DepartmentState("9", "<b>平台组</b>", "7"),
        ):
            record = a_department(id=department.id, department=department)
            await mirror.apply(record, encode_record(record))
        zhangwei = a_user()
        assert zhangwei.user is not None
        zhangsan = dataclasses.replace(
            zhangwei, id="zhangsan", user=dataclasses.replace(zhangwei.user, userid="zhangsan",
                                                              name="张三", active=False),
        )  # fmt: skip
        for user in (zhangwei, zhangsan):
            await mirror.apply(user, encode_record(user))
        await StoredLedger(ledgers, TARGET).remember(
            "wecom:wwacme:user:zhangwei", "user", "scim-id-of-zhangwei", {}
        )
    finally:
        await mirror.aclose()
        await ledgers.aclose()


def test_the_tree_search_department_and_user(console: TestClient, store_url: str) -> None:
    asyncio.run(mirrored(store_url))
    log_in(console, VIEWER_TOKEN)

    tree = console.get("/directory/acme").text
    branch = r'<li class="depth-(\d+)"><a href="[^"]+">([^<]+)</a>\s*<small>(\S+) · (\d+)'
    listed = re.findall(branch, tree)
    assert listed == [("0", "总部", "1", "2"), ("1", "研发中心", "7", "2"),
                      ("2", "&lt;b&gt;平台组&lt;/b&gt;", "9", "0")]  # fmt: skip

    assert re.findall(r"<td>(user|department)</td>", console.get("/directory/acme?q=张").text) == [
        "user", "user"]  # fmt: skip
    by_id = console.get("/directory/acme", params={"q": "7"}).text
    assert "/directory/acme/department/7" in by_id
    assert "Nothing matches." in console.get("/directory/acme", params={"q": "王"}).text

    department = console.get("/directory/acme/department/7").text
    assert "Under <a" in department
    assert "总部" in department
    assert "zhangwei" in department

    page = console.get("/directory/acme/user/zhangwei").text
    assert "scim-id-of-zhangwei" in page
    assert "wecom:wwacme:user:zhangwei" in page
    assert user_id("acme", "zhangwei") in page
    assert "研发中心</a> (leader)" in page
    assert "not written yet" in console.get("/directory/acme/user/zhangsan").text
    assert console.get("/directory/acme/user/nobody").status_code == 404
    assert console.get("/directory/nosuch/user/zhangwei").status_code == 404
