"""The mapping expression language: one test per construct of its grammar, and what must be
refused when the configuration is read (docs/mapping.md)."""

from __future__ import annotations

import pytest

from schemas.mapping.expression import MAX_LENGTH, MappingError, parse

USER = {"userid": "zhangsan", "name": "Zhang San", "mobile": "13800000000", "title": " Eng ",
        "custom.工号": "A-17", "custom.level": "p7"}  # fmt: skip
TABLES = {"levels": {"p7": "Senior", "p6": "Engineer"}}


def value(source: str, record: dict[str, str] | None = None) -> str:
    return parse(source).evaluate(USER if record is None else record, TABLES)


def test_a_plain_string() -> None:
    assert value('"corp"') == "corp"
    assert value('""') == ""


def test_a_template_with_fields() -> None:
    assert value('"{userid}@corp.example"') == "zhangsan@corp.example"
    assert value('"{ name } ({userid})"') == "Zhang San (zhangsan)"


def test_escapes_in_a_template() -> None:
    assert value(r'"{{literal}} \"quoted\" back\\slash"') == '{literal} "quoted" back\\slash'


def test_a_bare_field_and_a_custom_field() -> None:
    assert value("mobile") == "13800000000"
    assert value("custom.工号") == "A-17"
    assert value('"{custom.level}"') == "p7"


def test_a_missing_field_is_empty() -> None:
    assert value("email") == ""
    assert value("custom.nosuch") == ""


def test_concatenation() -> None:
    assert value('userid + "@" + "corp.example"') == "zhangsan@corp.example"


def test_lower_upper_and_trim() -> None:
    assert value("lower(name)") == "zhang san"
    assert value("upper(userid)") == "ZHANGSAN"
    assert value("trim(title)") == "Eng"


def test_default_takes_the_first_value_that_is_not_empty() -> None:
    assert value('default(email, "{userid}@corp.example")') == "zhangsan@corp.example"
    assert value('default(email, alias, mobile, "none")') == "13800000000"
    assert value("default(email, alias)") == ""


def test_lookup_in_a_table() -> None:
    assert value('lookup(custom.level, "levels")') == "Senior"
    assert value('lookup("p5", "levels")') == ""  # not in the table
    assert parse('lookup(custom.level, "levels") + lookup(title, "titles")').tables == {
        "levels", "titles"}  # fmt: skip


def test_grouping_and_nesting() -> None:
    assert value('upper(("{userid}" + "-") + lower(custom.level))') == "ZHANGSAN-P7"
    assert value(' lower( name )  +  "x" ') == "zhang sanx"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ('"{userid.__class__}"', "unknown field 'userid.__class__'"),
        ("userid.__class__", "unknown field 'userid.__class__'"),
        ('"{__class__}"', "unknown field '__class__'"),
        ('"{nosuch}"', "unknown field 'nosuch'"),
        ('"{0}"', "unknown field '0'"),
        ("password", "unknown field 'password'"),
        ("eval(userid)", "unknown function 'eval'"),
        ("__import__(userid)", "unknown function '__import__'"),
        ('"unbalanced', "is not closed"),
        ('"{userid"', "is not closed"),
        ("lower(name", "is not closed"),
        ('"a } b"', "a lone '}'"),
        ("lower()", "takes 1 argument(s), not 0"),
        ("lookup(name, title)", "the table is named by a plain string"),
        ("", "an expression was expected"),
        ('userid "x"', "unexpected"),
        ("userid +", "an expression was expected"),
        ("x" * (MAX_LENGTH + 1), "longer than"),
    ],
)
def test_refused_when_the_configuration_is_read(source: str, reason: str) -> None:
    with pytest.raises(MappingError) as refused:
        parse(source)
    assert reason in str(refused.value)
