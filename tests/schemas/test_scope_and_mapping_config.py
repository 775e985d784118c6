"""A target's `scope`, `mapping` and `mapping_tables` as the configuration gives them: what they
accept, what they do to a resource, and the one message naming the key for everything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemas.config import ConfigError, load_settings
from schemas.mapping.attributes import (
    ENTERPRISE_USER,
    check_against_schemas,
    parse_mapping,
)
from schemas.mapping.expression import MappingError
from schemas.mapping.scope import Scope, parse_scope
from tests.schemas.test_config import GOOD, write

CORP_USER = "urn:example:params:scim:schemas:extension:corp:2.0:User"


def settings_with(tmp_path: Path, tenant_lines: str) -> Any:
    return load_settings(write(tmp_path, GOOD + tenant_lines), environ={})


def test_a_tenants_target_takes_a_scope_and_a_mapping(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path,
        f"""
[tenants.scim]
base_url = "http://127.0.0.1:8001/v2"
[tenants.scim.scope]
include_departments = [2, "7"]
exclude_departments = ["9"]
users = {{ active = [true], "custom.employment" = ["full-time"] }}
[tenants.scim.mapping]
userName = '"{{userid}}@corp.example"'
'phoneNumbers[type eq "work"]' = "mobile"
"{CORP_USER}:costCenter" = 'lookup(custom.code, "centres")'
[tenants.scim.mapping_tables.centres]
RD = "CC-100"
""",
    )
    scim = settings.scim_for(settings.tenants[0])
    assert scim.scope == Scope(
        include=frozenset({"2", "7"}),
        exclude=frozenset({"9"}),
        users={"active": frozenset({"true"}), "custom.employment": frozenset({"full-time"})},
    )
    assert [a.key for a in scim.mapping.attributes] == [
        "userName", 'phoneNumbers[type eq "work"]', f"{CORP_USER}:costCenter",
    ]  # fmt: skip
    assert scim.mapping.tables == {"centres": {"RD": "CC-100"}}
    assert settings.scim.scope.everything  # the default target is untouched


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("[scim.mapping]\nuserName = '\"{userid.__class__}\"'",
         "scim.mapping.userName: unknown field 'userid.__class__'"),
        ("[scim.mapping]\ntitle = 'nosuch'", "scim.mapping.title: unknown field 'nosuch'"),
        ("[scim.mapping]\ntitle = 'eval(name)'", "scim.mapping.title: unknown function 'eval'"),
        ("[scim.mapping]\ntitle = '\"unbalanced'", "scim.mapping.title: the string opened at 1"),
        ("[scim.mapping]\ntitle = 'lookup(name, \"levels\")'",
         "scim.mapping.title: no lookup table 'levels'"),
        ("[scim.mapping]\nexternalId = 'userid'", "scim.mapping.externalId: orgstream sets"),
        ("[scim.mapping]\nactive = 'userid'", "scim.mapping.active: orgstream sets"),
        (f"[scim.mapping]\n'{ENTERPRISE_USER}:manager' = 'userid'", ":manager: orgstream sets"),
        ("[scim.mapping]\nemails = 'email'", 'say which entry, e.g. emails[type eq "work"]'),
        ("[scim.mapping]\npassword = 'userid'", "scim.mapping.password: not an attribute"),
        ("[scim.mapping]\ntitle = 3", "scim.mapping.title: must be an expression in a string"),
        ("[scim.mapping_tables]\nlevels = 3", "scim.mapping_tables.levels: must be a table"),
        ("[scim.scope]\ninclude = ['2']", "scim.scope.include: unknown key"),
        ("[scim.scope]\ninclude_departments = '2'", "scim.scope.include_departments: must be"),
        ("[scim.scope.users]\nsalary = ['1']", "scim.scope.users.salary: unknown field"),
        ("[scim.scope.users]\nactive = []", "scim.scope.users.active: must be a list of at"),
        ("user_name = '{userid}{userid.__class__}'", "scim.user_name: placeholders are"),
        ("user_name = '{userid}{0}'", "scim.user_name: placeholders are"),
        ("[scim.mapping]\n'urn:ietf:params:scim:schemas:core:2.0:Group:displayName' = 'name'",
         "not an attribute a mapping can set"),
        (f"[scim.mapping]\n'{ENTERPRISE_USER}:Manager' = 'userid'", ":Manager: orgstream sets"),
        ("[scim.mapping]\nExternalId = 'userid'", "scim.mapping.ExternalId: orgstream sets"),
    ],
)  # fmt: skip
def test_a_bad_scope_or_mapping_is_refused_naming_the_key(
    tmp_path: Path, lines: str, message: str
) -> None:
    assert message in refusal(tmp_path, in_default_target(lines))


def in_default_target(lines: str) -> str:
    """GOOD with `lines` added to its [scim] table."""
    return GOOD.replace('department_mode = "nested"\n', f'department_mode = "nested"\n{lines}\n')


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load_settings(write(tmp_path, text), environ={})
    return str(refused.value)


# ---- what a mapping does to a resource -----------------------------------------------------


def resource() -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
        "userName": "zhangsan",
        "name": {"formatted": "张三"},
        "emails": [{"value": "zs@corp.example", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "010-1", "type": "work"}],
        ENTERPRISE_USER: {"department": "研发"},
    }


def test_each_kind_of_attribute_is_set_and_an_empty_value_removes_it() -> None:
    mapping = parse_mapping(
        {
            "userName": '"{userid}@corp.example"',
            "title": "title",  # empty for this user: removed
            "name.familyName": '"张"',
            'phoneNumbers[type eq "mobile"]': "mobile",
            'emails[type eq "work"]': "biz_mail",  # empty: the work address goes
            f"{ENTERPRISE_USER}:employeeNumber": "custom.工号",
            f"{CORP_USER}:costCenter": 'lookup(main_department, "centres")',
        },
        {"centres": {"7": "CC-7"}},
        "scim.mapping",
    )
    record = {"userid": "zhangsan", "mobile": "138", "main_department": "7", "custom.工号": "A1"}
    mapped = mapping.apply({**resource(), "title": "工程师"}, record)

    assert mapped["userName"] == "zhangsan@corp.example"
    assert "title" not in mapped
    assert mapped["name"] == {"formatted": "张三", "familyName": "张"}
    assert mapped["phoneNumbers"] == [
        {"value": "138", "type": "mobile"}, {"value": "010-1", "type": "work"},
    ]  # fmt: skip
    assert "emails" not in mapped
    assert mapped[ENTERPRISE_USER] == {"department": "研发", "employeeNumber": "A1"}
    assert mapped[CORP_USER] == {"costCenter": "CC-7"}
    assert CORP_USER in mapped["schemas"]
    assert mapping.reads_custom
    assert set(mapping.patch_paths) == {
        "userName", "title", "name.familyName", "phoneNumbers", "emails",
        f"{ENTERPRISE_USER}:employeeNumber", f"{CORP_USER}:costCenter",
    }  # fmt: skip


def test_an_extension_left_empty_leaves_the_resource_and_its_schemas() -> None:
    mapping = parse_mapping({f"{CORP_USER}:costCenter": "custom.code"}, {}, "scim.mapping")
    mapped = mapping.apply(resource(), {"userid": "zhangsan"})
    assert CORP_USER not in mapped
    assert CORP_USER not in mapped["schemas"]


# ---- checked against a target's /Schemas ---------------------------------------------------

SCHEMAS: list[dict[str, Any]] = [
    {"id": "urn:ietf:params:scim:schemas:core:2.0:User", "attributes": [
        {"name": "userName", "type": "string", "mutability": "readWrite"},
        {"name": "name", "type": "complex", "subAttributes": [{"name": "givenName"}]},
        {"name": "phoneNumbers", "type": "complex", "multiValued": True},
        {"name": "nickName", "type": "boolean"},  # not what RFC 7643 says: a target's quirk
    ]},
    {"id": CORP_USER, "attributes": [{"name": "costCenter", "type": "string"},
                                     {"name": "badgeId", "mutability": "readOnly"},
                                     {"name": "tags", "type": "string", "multiValued": True},
                                     {"name": "office", "type": "complex"}]},
]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("title", "has no attribute 'title'"),
        ("name.familyName", "the target's name has no part 'familyName'"),
        (f"{ENTERPRISE_USER}:employeeNumber", f"does not advertise the schema {ENTERPRISE_USER}"),
        (f"{CORP_USER}:badgeId", "read-only"),
        (f"{CORP_USER}:nosuch", "has no attribute 'nosuch'"),
        ("nickName", "the target's attribute is boolean, not one string"),
        (f"{CORP_USER}:tags", "is multi-valued string, not one string"),
        (f"{CORP_USER}:office", "is complex, not one string"),
    ],
)
def test_an_attribute_the_target_does_not_list_is_refused(key: str, message: str) -> None:
    mapping = parse_mapping({key: "userid"}, {}, "scim.mapping")
    with pytest.raises(MappingError) as refused:
        check_against_schemas(mapping, SCHEMAS, "scim.mapping")
    assert str(refused.value).startswith(f"scim.mapping.{key}: ")
    assert message in str(refused.value)


def test_attributes_the_target_lists_pass_whatever_their_case() -> None:
    entries = {
        "userName": "userid",
        "name.givenName": "name",
        'phoneNumbers[type eq "work"]': "mobile",
        f"{CORP_USER}:costCenter": "custom.c",
    }
    mapping = parse_mapping(entries, {}, "scim.mapping")  # fmt: skip
    lowered = [{**s, "attributes": [{**a, "name": str(a["name"]).lower()}
                                    for a in s["attributes"]]} for s in SCHEMAS]  # fmt: skip
    check_against_schemas(mapping, lowered, "scim.mapping")  # RFC 7643: names ignore case


# ---- scope -----------------------------------------------------------------------------


def test_a_department_is_in_scope_by_its_ancestry() -> None:
    scope = parse_scope(
        {"include_departments": ["2", "5"], "exclude_departments": [9]}, "scim.scope"
    )
    assert scope.holds_department(["2", "1"])
    assert scope.holds_department(["12", "5", "1"])  # below an included one
    assert not scope.holds_department(["9", "2", "1"])  # excluded inside an included one
    assert not scope.holds_department(["19", "9", "2", "1"])
    assert not scope.holds_department(["3", "1"])
    everything = parse_scope({"exclude_departments": ["9"]}, "scim.scope")
    assert everything.holds_department(["3", "1"])
    assert not everything.holds_department(["9", "1"])
    assert Scope().everything


def test_user_conditions_all_hold_and_any_listed_value_passes() -> None:
    scope = parse_scope(
        {"users": {"active": [True], "custom.type": ["full-time", "intern"]}}, "scim.scope"
    )
    assert scope.admits({"active": "true", "custom.type": "intern"})
    assert not scope.admits({"active": "false", "custom.type": "intern"})
    assert not scope.admits({"active": "true"})  # a missing field is empty
    assert scope.reads_custom
    with pytest.raises(MappingError):
        parse_scope({"users": {"custom.": ["x"]}}, "scim.scope")


# ---- the README's worked examples ---------------------------------------------------------


def readme_examples() -> dict[str, str]:
    """The TOML of each worked example in the README's "Scope and mapping per target"."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Scope and mapping per target", 1)[1].split("\n## ", 1)[0]
    examples = {}
    for target in ("AWS IAM Identity Center", "Atlassian Cloud"):
        after = section.split(f"**{target}**", 1)[1]
        examples[target] = after.split("```toml\n", 1)[1].split("```", 1)[0]
    return examples


@pytest.mark.parametrize("target", ["AWS IAM Identity Center", "Atlassian Cloud"])
def test_the_readmes_examples_load_and_map_as_they_say(tmp_path: Path, target: str) -> None:
    example = readme_examples()[target].replace("<", "").replace(">", "")
    settings = settings_with(tmp_path, example)
    scim = settings.scim_for(settings.tenants[0])
    record = {"userid": "zhangsan", "name": "张三", "biz_mail": "ZS@Corp.example",
              "main_department": "2", "custom.用工类型": "正式", "custom.工号": "A-1"}  # fmt: skip
    mapped = scim.mapping.apply(resource(), record)
    assert mapped["userName"] == "zs@corp.example"
    assert mapped["emails"][0]["value"] == "zs@corp.example"
    if target == "AWS IAM Identity Center":
        assert mapped["name"]["givenName"] == mapped["name"]["familyName"] == "张三"
        assert "phoneNumbers" not in mapped  # the desk phone dropped
        assert mapped[ENTERPRISE_USER]["costCenter"] == "CC-RD"
        assert scim.scope.holds_department(["31", "15", "1"])
        assert not scim.scope.holds_department(["27", "2", "1"])
    else:
        assert mapped[ENTERPRISE_USER]["organization"] == "Acme 中国"
        assert scim.scope.admits({"custom.用工类型": "正式"})
        assert not scim.scope.admits({"custom.用工类型": "外包"})


FEED = '\n[feed]\nenabled = true\nexclude_fields = ["custom", "mobile"]\n'


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("[scim.scope.users]\n'custom.type' = ['x']",
         "scim.scope.users.custom.type: reads custom.type, which [feed] exclude_fields keeps off"),
        ("[scim.mapping]\ntitle = 'default(mobile, name)'",
         "scim.mapping.title: reads mobile, which [feed] exclude_fields keeps off"),
        ("[scim.mapping]\n'phoneNumbers[type eq \"work\"]' = 'name'",
         "leaves phoneNumbers to the target"),
    ],
)  # fmt: skip
def test_a_scope_or_mapping_that_needs_what_the_feed_leaves_out_is_refused(
    tmp_path: Path, lines: str, message: str
) -> None:
    text = in_default_target(lines)
    assert message in refusal(tmp_path, text + FEED)
    load_settings(write(tmp_path, text), environ={})  # the same, with the fields on the feed


def test_a_scope_of_subtrees_needs_the_department_tree(tmp_path: Path) -> None:
    without_api = GOOD.replace('api_secret = "s3cret-value"\n', "")
    scoped = without_api + "[tenants.scim.scope]\ninclude_departments = [2]\n"
    assert "tenants[0]: its target's scope chooses departments" in refusal(tmp_path, scoped)
    load_settings(write(tmp_path, scoped + "[feed]\nenabled = true\n"), environ={})  # the mirror
    users_only = without_api + "[tenants.scim.scope]\nusers = { active = [true] }\n"
    load_settings(write(tmp_path, users_only), environ={})
