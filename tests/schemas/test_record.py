"""The directory record model and its JSON Schema file agree; the codec round-trips and
refuses what is not a record."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, get_args

import jsonschema
import orjson
import pytest

import schemas
from schemas.record import (
    ORIGINS,
    RECORD_SCHEMA_VERSION,
    USER_TEXT_FIELDS,
    DepartmentState,
    DirectoryRecord,
    Membership,
    RecordError,
    Resolved,
    UserState,
    decode_record,
    encode_record,
)
from schemas.types import Entity, Vendor

SCHEMA = json.loads(
    (Path(schemas.__file__).parent / "directory-record.v2.schema.json").read_text(encoding="utf-8")
)


def a_user(**changes: Any) -> DirectoryRecord:
    record = DirectoryRecord(
        tenant="acme",
        vendor="wecom",
        kind="user",
        id="zhangwei",
        version=1_767_225_600_123,
        origin="callback",
        resolved_at="2026-01-01T00:00:00.200Z",
        user=UserState(
            userid="zhangwei",
            name="张伟",
            active=True,
            departments=(Membership("1", 10, False), Membership("7", 3, True)),
            main_department="7",
            direct_leaders=("lisi",),
            texts={"title": "工程师", "mobile": "13800000000"},
            custom={"工号": "A-17"},
            extra={"gender": "1", "avatar": "https://example.com/a.png"},
        ),
        resolved=(Resolved("e1", "created", "2026-01-01T00:00:00.100Z"),),
    )
    return dataclasses.replace(record, **changes)


def a_department(**changes: Any) -> DirectoryRecord:
    record = DirectoryRecord(
        tenant="acme",
        vendor="dingtalk",
        kind="department",
        id="7",
        version=1,
        origin="full_sync",
        resolved_at="2026-01-01T00:00:00.200Z",
        department=DepartmentState("7", "研发中心", "1", 3, {"deptManagerUseridList": "lisi"}),
    )
    return dataclasses.replace(record, **changes)


def a_deletion(**changes: Any) -> DirectoryRecord:
    return a_user(user=None, deleted=True, renamed_to="zhangwei2", **changes)


def test_model_fields_are_the_schema_properties() -> None:
    assert {f.name for f in dataclasses.fields(DirectoryRecord)} == set(SCHEMA["properties"])
    assert set(SCHEMA["required"]) == set(SCHEMA["properties"])
    user = SCHEMA["properties"]["user"]["oneOf"][1]["properties"]
    assert {f.name for f in dataclasses.fields(UserState)} == set(user)
    assert set(user["texts"]["propertyNames"]["enum"]) == set(USER_TEXT_FIELDS)
    department = SCHEMA["properties"]["department"]["oneOf"][1]["properties"]
    assert {f.name for f in dataclasses.fields(DepartmentState)} == set(department)


def test_model_enums_are_the_schema_enums() -> None:
    props = SCHEMA["properties"]
    assert set(props["vendor"]["enum"]) == set(get_args(Vendor))
    assert set(props["kind"]["enum"]) == set(get_args(Entity))
    assert set(props["origin"]["enum"]) == set(ORIGINS)
    assert props["schema_version"]["const"] == RECORD_SCHEMA_VERSION


@pytest.mark.parametrize("record", [a_user(), a_department(), a_deletion()], ids=str)
def test_what_a_producer_writes_validates_and_reads_back(record: DirectoryRecord) -> None:
    encoded = encode_record(record)
    jsonschema.validate(orjson.loads(encoded), SCHEMA)
    assert decode_record(encoded) == record


def test_the_key_is_the_hints_key() -> None:
    assert a_user().key == b"acme:user:zhangwei"
    assert a_department().key == b"acme:department:7"


def test_an_older_record_does_not_supersede_a_newer_one() -> None:
    record = a_user(version=100)
    assert record.supersedes(None)
    assert record.supersedes(100)
    assert not record.supersedes(101)


def with_fields(**fields: Any) -> bytes:
    return orjson.dumps({**orjson.loads(encode_record(a_user())), **fields})


USER = orjson.loads(encode_record(a_user()))["user"]


@pytest.mark.parametrize(
    ("payload", "the_schema_refuses_it_too"),
    [
        (b"not json", False),
        (b"[]", True),
        (with_fields(schema_version=3), True),
        (with_fields(kind="tag"), True),
        (with_fields(version="soon"), True),
        (with_fields(department=None, user=None), True),
        (with_fields(user={"userid": "x"}), True),
        (with_fields(user=["zhangwei"]), True),
        (with_fields(user={**USER, "active": "false"}), True),
        (with_fields(id="someone-else"), False),  # a rule beyond JSON Schema: the model's
    ],
    ids=["junk", "array", "version-3", "kind", "version-type", "empty", "partial-user",
         "user-list", "active-string", "other-id"],
)  # fmt: skip
def test_a_consumer_refuses_what_is_not_a_record(
    payload: bytes, the_schema_refuses_it_too: bool
) -> None:
    with pytest.raises(RecordError):
        decode_record(payload)
    if the_schema_refuses_it_too:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(orjson.loads(payload), SCHEMA)


def test_a_version_1_record_with_numeric_department_ids_reads_as_strings() -> None:
    """What the topic still holds after an upgrade: ids as numbers, 0 for the root's parent."""
    user = orjson.loads(encode_record(a_user()))
    user["schema_version"] = 1
    user["user"]["departments"] = [{"department": 1, "order": 10, "leader": False}]
    user["user"]["main_department"] = 1
    department = orjson.loads(encode_record(a_department(id="1")))
    department["schema_version"] = 1
    department["department"] |= {"id": 1, "parent_id": 0}
    read_user = decode_record(orjson.dumps(user)).user
    read_department = decode_record(orjson.dumps(department)).department
    assert read_user is not None
    assert read_department is not None
    assert ([m.department for m in read_user.departments], read_user.main_department) == (
        ["1"],
        "1",
    )
    assert (read_department.id, read_department.parent_id) == ("1", "")
    with pytest.raises(RecordError, match="schema_version"):
        decode_record(orjson.dumps({**user, "schema_version": 3}))
