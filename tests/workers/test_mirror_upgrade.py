"""A mirror written before department ids were strings (numbers in BIGINT columns, the number 0
for "no parent") keeps working after the upgrade, beside a Feishu tenant's string ids."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import orjson
import psycopg
import pytest

from schemas.record import DepartmentState, Membership, encode_record
from tests.schemas.test_record import a_department, a_user
from tests.stores import store_url
from workers.store.mirror import open_mirror

OLD_SCHEMA = (
    """CREATE TABLE mirror_entities (tenant TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
    version BIGINT NOT NULL, deleted INTEGER NOT NULL, name TEXT NOT NULL, parent_id BIGINT,
    record TEXT NOT NULL, PRIMARY KEY (tenant, kind, id))""",
    """CREATE TABLE mirror_memberships (tenant TEXT NOT NULL, userid TEXT NOT NULL,
    department BIGINT NOT NULL, position BIGINT NOT NULL,
    PRIMARY KEY (tenant, userid, department))""",
)


def old_record(record_json: bytes, **numbers: int) -> str:
    """A record as the previous version wrote it: department ids as numbers."""
    data = orjson.loads(record_json)
    if data["department"]:
        data["department"] |= numbers
    if data["user"]:
        for membership in data["user"]["departments"]:
            membership["department"] = int(membership["department"])
        data["user"]["main_department"] = int(data["user"]["main_department"])
    return orjson.dumps(data).decode()


def old_rows() -> list[tuple[str, list[object]]]:
    root = a_department(id="1", department=DepartmentState("1", "总部", ""))
    rows: list[tuple[str, list[object]]] = [
        (
            "INSERT INTO mirror_entities VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ["acme", "department", "1", 1, 0, "总部", 0,
             old_record(encode_record(root), id=1, parent_id=0)],
        ),
        (
            "INSERT INTO mirror_entities VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ["acme", "department", "7", 1, 0, "研发中心", 1,
             old_record(encode_record(a_department()), id=7, parent_id=1)],
        ),
        (
            "INSERT INTO mirror_entities VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ["acme", "user", "zhangwei", 1, 0, "张伟", None,
             old_record(encode_record(a_user()))],
        ),
        ("INSERT INTO mirror_memberships VALUES (?, ?, ?, ?)", ["acme", "zhangwei", 1, 0]),
        ("INSERT INTO mirror_memberships VALUES (?, ?, ?, ?)", ["acme", "zhangwei", 7, 1]),
    ]  # fmt: skip
    return rows


async def write_old_store(url: str) -> None:
    if url.startswith("sqlite:///"):
        lite = sqlite3.connect(url.removeprefix("sqlite:///"))
        for statement in OLD_SCHEMA:
            lite.execute(statement)
        for sql, params in old_rows():
            lite.execute(sql, params)
        lite.commit()
        lite.close()
        return
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as pg:
        for statement in OLD_SCHEMA:
            await pg.execute(statement)
        for sql, params in old_rows():
            await pg.execute(sql.replace("?", "%s"), params)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_an_old_mirror_reads_on_and_takes_string_ids(kind: str, tmp_path: Path) -> None:
    async with store_url(kind, tmp_path) as url:
        await write_old_store(url)
        mirror = open_mirror(url)
        try:
            assert await mirror.children("acme", "1") == ["7"]
            assert await mirror.members("acme", "7") == ["zhangwei"]
            root, rd = await mirror.department("acme", "1"), await mirror.department("acme", "7")
            assert root is not None
            assert rd is not None
            assert (root.id, root.parent_id, rd.id, rd.parent_id) == ("1", "", "7", "1")
            user = await mirror.user("acme", "zhangwei")
            assert user is not None
            assert [m.department for m in user.departments] == ["1", "7"]
            # A Feishu tenant beside it: ids that are no numbers, and a root named "0".
            team = a_department(
                tenant="gamma",
                vendor="feishu",
                id="od-9f1c",
                department=DepartmentState("od-9f1c", "研发", "0"),
            )
            assert await mirror.apply(team, encode_record(team))
            member = a_user(tenant="gamma", vendor="feishu")
            assert member.user is not None
            member = dataclasses.replace(
                member,
                user=dataclasses.replace(
                    member.user, departments=(Membership("od-9f1c"),), main_department="od-9f1c"
                ),
            )
            assert await mirror.apply(member, encode_record(member))
            assert await mirror.children("gamma", "0") == ["od-9f1c"]
            assert await mirror.members("gamma", "od-9f1c") == ["zhangwei"]
            assert await mirror.members("acme", "7") == ["zhangwei"]  # nothing crossed over
            # Ids that only look like numbers stay themselves: "0123" is not "123".
            for custom in ("0123", "123", "1e3"):
                child = a_department(
                    tenant="gamma",
                    vendor="feishu",
                    id=custom,
                    department=DepartmentState(custom, custom, "0123"),
                )
                assert await mirror.apply(child, encode_record(child))
            assert await mirror.children("gamma", "0123") == ["0123", "123", "1e3"]
            assert await mirror.children("gamma", "123") == []
        finally:
            await mirror.aclose()
        again = open_mirror(url)  # the second start finds nothing to change, and loses nothing
        try:
            assert await again.children("acme", "1") == ["7"]
            assert await again.children("gamma", "0123") == ["0123", "123", "1e3"]
        finally:
            await again.aclose()
