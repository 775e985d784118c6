"""RFC 7644 filters (§3.4.2.2) as SQL over the directory index: a condition on the resource
row `r` in which every comparison is an indexed lookup in `directory_values`.

scim2-models parses the filter (its grammar gives `and` precedence over `or`, and keeps
`true`, `1` and `"1"` apart); this module only walks the tree. A comparison becomes
`r.scim_id IN (SELECT … WHERE path = ? AND <value test>)`, so `userName eq "x"` costs one
index probe however many users there are; `emails[type eq "work" and value co "@x"]` asks that
both tests hold on the same element.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Final

from scim2_models import InvalidFilterException
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ScimFilter,
    ValuePath,
)

from workers.directory.attributes import ATTRIBUTES, Attribute, path_of

Sql = tuple[str, list[Any]]

_ORDERING: Final = {
    CompareOperator.gt: ">",
    CompareOperator.ge: ">=",
    CompareOperator.lt: "<",
    CompareOperator.le: "<=",
}
_PATTERNS: Final = {
    CompareOperator.co: "%{}%",
    CompareOperator.sw: "{}%",
    CompareOperator.ew: "%{}",
}


# More would only make SQL no database plans well (SQLite stops at a depth of 1000).
MAX_COMPARISONS: Final = 200


class FilterError(ValueError):
    """A filter that cannot be evaluated: answered 400 `invalidFilter`."""


class _Unknown(FilterError):
    """An attribute the resource type does not have."""


def compile_filter(kind: str, tenant: str, text: str | None, lenient: bool = False) -> Sql:
    """The SQL condition on `r` that selects what `text` selects (everything when None).
    `lenient` (a search over every resource type): an attribute this type does not have
    makes its comparison false rather than the filter invalid (RFC 7644 §3.4.2.1)."""
    if text is None or not text.strip():
        return "1 = 1", []
    shape, literals = _shape(text)
    try:
        tree = _parsed(shape) if len(shape) <= _CACHED_SHAPE else ScimFilter(shape).ast
    except InvalidFilterException as exc:
        raise FilterError(f"{exc.detail}" if exc.detail else "invalid filter") from exc
    if _comparisons(tree) > MAX_COMPARISONS:
        raise FilterError(f"at most {MAX_COMPARISONS} comparisons in one filter")
    compiler = _Compiler(kind, tenant, lenient=lenient, literals=literals)
    try:
        return compiler.visit(tree), compiler.params
    except FilterError:
        raise
    except (ValueError, OverflowError) as exc:  # a value no comparison can hold
        raise FilterError(f"a value that cannot be compared: {exc}") from exc


def _comparisons(node: FilterNode) -> int:
    if isinstance(node, LogicalExpr):
        return sum(_comparisons(term) for term in node.terms)
    if isinstance(node, Not):
        return _comparisons(node.expr)
    if isinstance(node, ValuePath):
        return _comparisons(node.val_filter)
    return 1


def normalize_time(value: Any) -> str:
    """A dateTime as stored: UTC, microseconds, `Z`, so text order is time order."""
    if not isinstance(value, str):
        raise FilterError(f"{value!r} is not a dateTime")
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (ValueError, OverflowError) as exc:  # not a time, or past year 1 or 9999 in UTC
        raise FilterError(f"{value!r} is not a dateTime") from exc


# A string literal of a filter: JSON's, escapes included.
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"')


def _shape(text: str) -> tuple[str, dict[str, str]]:
    """The filter with each string literal replaced by a numbered stand-in, and the literals
    by stand-in: filters of one shape (`userName eq "…"`) are parsed once (`_parsed`)."""
    literals: dict[str, str] = {}

    def stand_in(match: re.Match[str]) -> str:
        try:
            value = json.loads(match.group())
        except ValueError as exc:
            raise FilterError(f"invalid string {match.group()[:40]}: {exc}") from exc
        name = f"s{len(literals)}"
        literals[name] = value
        return f'"{name}"'

    return _STRING.sub(stand_in, text), literals


_CACHED_SHAPE: Final = 1024  # longer shapes are rare, and would hold much memory each


@functools.lru_cache(maxsize=1024)
def _parsed(shape: str) -> FilterNode:
    """Parsing is most of a lookup's cost (scim2-models' lark grammar); the tree is only read."""
    return ScimFilter(shape).ast


class _Compiler(FilterVisitor[str]):
    def __init__(
        self,
        kind: str,
        tenant: str,
        element_of: str | None = None,
        lenient: bool = False,
        literals: dict[str, str] | None = None,
    ) -> None:
        # Not correlated with `r`: each lookup runs once per query, from the index.
        self.kind, self.tenant, self.lenient = kind, tenant, lenient
        self.params: list[Any] = []
        self._element_of = element_of  # inside `attr[...]`: the attribute whose elements
        self._literals = literals or {}

    def visit_logical_expr(self, node: LogicalExpr) -> str:
        joiner = " AND " if node.op == LogicalOperator.and_ else " OR "
        return "(" + joiner.join(self.visit(term) for term in node.terms) + ")"

    def visit_not(self, node: Not) -> str:
        return f"(NOT {self.visit(node.expr)})"

    def visit(self, node: FilterNode) -> str:
        try:
            return super().visit(node)
        except _Unknown:
            if self.lenient and not isinstance(node, LogicalExpr | Not):
                return "(1 = 0)"  # this resource type has no such attribute: false here
            raise

    def visit_present(self, node: Present) -> str:
        path, attribute = self._resolve(node.attr_path)
        if attribute.column is not None:
            return "1 = 1"
        if attribute.type == "complex":  # any of its sub-attributes
            return self._match("v.path LIKE ? AND v.value <> ''", [f"{path}.%"])
        return self._match("v.path = ? AND v.value <> ''", [path])

    def visit_comparison(self, node: Comparison) -> str:
        value = node.value
        if isinstance(value, str):  # the stand-in of a string literal (`_shape`): the literal
            value = self._literals[value]
        return self._compare(node.attr_path, node.op, value)

    def _compare(self, attr_path: AttrPath, op: CompareOperator, value: Any) -> str:
        path, attribute = self._resolve(attr_path)
        if attribute.type == "complex":
            if attribute.default_sub is None:
                raise FilterError(f"{attr_path} is complex: name one of its sub-attributes")
            path = f"{path}.{attribute.default_sub}"
            attribute = ATTRIBUTES[self.kind][path]
        if value is None:  # `x eq null` is `not (x pr)`
            if op not in (CompareOperator.eq, CompareOperator.ne):
                raise FilterError(f"{op.value} null: only eq and ne compare with null")
            present = self.visit_present(Present(attr_path))
            return f"(NOT {present})" if op == CompareOperator.eq else present
        if op == CompareOperator.ne:
            return f"(NOT {self._compare(attr_path, CompareOperator.eq, value)})"
        test, params = _test(path, attribute, op, value)
        if attribute.column is not None:
            self.params += params
            return test.replace("v.column", attribute.column)
        return self._match(f"v.path = ? AND {test}", [path, *params])

    def visit_value_path(self, node: ValuePath) -> str:
        if self._element_of is not None:
            raise FilterError("a filter in brackets cannot hold another one")
        path, attribute = self._resolve(node.attr_path)
        if attribute.type != "complex":
            raise FilterError(f"{node.attr_path} has no sub-attributes to filter on")
        inner = _Compiler(self.kind, self.tenant, path, self.lenient, self._literals)
        condition = inner.visit(node.val_filter)
        self.params += [self.tenant, self.kind, path, *inner.params]
        return (
            "r.scim_id IN (SELECT e.scim_id FROM directory_values e"
            " WHERE e.tenant = ? AND e.kind = ? AND e.path = ?"
            f" AND {condition})"
        )

    def _resolve(self, attr_path: AttrPath) -> tuple[str, Attribute]:
        if self._element_of is not None:
            if attr_path.uri is not None or attr_path.sub_attr is not None:
                raise FilterError(f"{attr_path}: inside brackets, name a sub-attribute")
            path = f"{self._element_of}.{attr_path.attr.lower()}"
        else:
            path = path_of(self.kind, attr_path.attr, attr_path.sub_attr, attr_path.uri)
        attribute = ATTRIBUTES[self.kind].get(path)
        if attribute is None:
            raise _Unknown(f"{attr_path}: no such attribute on {self.kind}")
        if self._element_of is not None and attribute.type == "complex":
            raise FilterError(f"{attr_path}: not a sub-attribute")
        return path, attribute

    def _match(self, test: str, params: list[Any]) -> str:
        """Resources (in brackets: elements) with a value row passing `test`."""
        if self._element_of is not None:
            self.params += params
            return (
                "EXISTS (SELECT 1 FROM directory_values v WHERE v.tenant = e.tenant"
                f" AND v.kind = e.kind AND v.scim_id = e.scim_id AND v.element = e.element"
                f" AND {test})"
            )
        self.params += [self.tenant, self.kind, *params]
        return (
            "r.scim_id IN (SELECT v.scim_id FROM directory_values v"
            f" WHERE v.tenant = ? AND v.kind = ? AND {test})"
        )


def _test(path: str, attribute: Attribute, op: CompareOperator, value: Any) -> Sql:
    """The test of one value row (`v.…`, or `v.column` for a column) against `op value`."""
    kind = attribute.type
    if kind == "boolean":
        if not isinstance(value, bool) or op != CompareOperator.eq:
            raise FilterError(f"{path}: a boolean, compared with eq or ne to true or false")
        return _on(attribute, "folded") + " = ?", ["true" if value else "false"]
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FilterError(f"{path}: compare with a number")
        try:
            number = float(value)
        except OverflowError as exc:
            raise FilterError(f"{path}: a number too large") from exc
        if not math.isfinite(number):
            raise FilterError(f"{path}: a finite number")
        if op in _PATTERNS:
            raise FilterError(f"{op.value} compares strings; {path} is a number")
        sign = "=" if op == CompareOperator.eq else _ORDERING[op]
        return f"v.number {sign} ?", [number]
    if kind == "dateTime":
        if op in _PATTERNS:
            raise FilterError(f"{op.value} compares strings; {path} is a dateTime")
        sign = "=" if op == CompareOperator.eq else _ORDERING[op]
        return f"{_on(attribute, 'value')} {sign} ?", [normalize_time(value)]
    if not isinstance(value, str):
        raise FilterError(f"{path}: compare with a string")
    if "\x00" in value:  # no stored value holds one, and PostgreSQL's text cannot
        raise FilterError(f"{path}: a string without NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate from a \\u escape
        raise FilterError(f"{path}: not a valid Unicode string") from exc
    column = _on(attribute, "folded")  # as written where the attribute compares exactly
    text = value if attribute.case_exact else value.lower()
    if op in _PATTERNS:
        escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return f"{column} LIKE ? ESCAPE '!'", [_PATTERNS[op].format(escaped)]
    sign = "=" if op == CompareOperator.eq else _ORDERING[op]
    return f"{column} {sign} ?", [text]


def _on(attribute: Attribute, field: str) -> str:
    return "v.column" if attribute.column is not None else f"v.{field}"
