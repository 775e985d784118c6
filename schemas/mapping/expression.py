"""The mapping expression language (docs/mapping.md): what feeds one SCIM attribute, written
as a template, a field, a call or several of them joined with `+`. A tokenizer and a
recursive-descent parser of our own turn the text into a tree once, at start; evaluating the
tree only reads the record's fields. Nothing here formats, evaluates or looks up Python
attributes, so `{userid.__class__}` is an unknown field, not a way in.

    expression := term ("+" term)*
    term       := template | field | call | "(" expression ")"
    template   := '"' (text | "{" field "}" | "{{" | "}}" | '\\"' | "\\\\")* '"'
    field      := name | "custom." key
    call       := function "(" [expression ("," expression)*] ")"
    function   := lower | upper | trim | default | lookup
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from schemas.record import USER_TEXT_FIELDS

# The record's fields an expression may read; `custom.<key>` reads a vendor custom field.
FIELDS: Final = frozenset({"userid", "name", "main_department", *USER_TEXT_FIELDS})
# name → (fewest, most) arguments
FUNCTIONS: Final = {"lower": (1, 1), "upper": (1, 1), "trim": (1, 1), "default": (2, 8),
                    "lookup": (2, 2)}  # fmt: skip
MAX_LENGTH: Final = 1000
_CUSTOM: Final = re.compile(r"custom\.([^\s{}()+,\"\\]+)")


class MappingError(ValueError):
    """An expression that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Field:
    name: str  # one of FIELDS, or "custom.<key>"


@dataclass(frozen=True)
class Call:
    function: str
    arguments: tuple[Node, ...]


@dataclass(frozen=True)
class Join:
    parts: tuple[Node, ...]


Node = Text | Field | Call | Join
Record = Mapping[str, str]  # the fields of one user, "custom.<key>" for custom ones


@dataclass(frozen=True)
class Expression:
    source: str
    tree: Node

    def evaluate(self, record: Record, tables: Mapping[str, Mapping[str, str]]) -> str:
        """The attribute's value for `record`; "" when what it reads is missing."""
        return _evaluate(self.tree, record, tables)

    @property
    def fields(self) -> frozenset[str]:
        """The fields it reads ("custom.<key>" for custom ones)."""
        return frozenset(_fields(self.tree))

    @property
    def tables(self) -> frozenset[str]:
        """The lookup tables it names (checked against the configuration at start)."""
        return frozenset(_tables(self.tree))


def parse(source: str) -> Expression:
    if len(source) > MAX_LENGTH:
        raise MappingError(f"longer than {MAX_LENGTH} characters")
    parser = _Parser(source)
    tree = parser.expression()
    parser.skip_space()
    if parser.at < len(source):
        raise MappingError(f"unexpected {source[parser.at]!r} at {parser.at + 1}")
    return Expression(source, tree)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source, self.at = source, 0

    def skip_space(self) -> None:
        while self.at < len(self.source) and self.source[self.at].isspace():
            self.at += 1

    def peek(self) -> str:
        self.skip_space()
        return self.source[self.at] if self.at < len(self.source) else ""

    def expression(self) -> Node:
        parts = [self.term()]
        while self.peek() == "+":
            self.at += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Join(tuple(parts))

    def term(self) -> Node:
        char, start = self.peek(), self.at
        if char == '"':
            return self.template()
        if char == "(":
            self.at += 1
            inner = self.expression()
            self.expect(")", start)
            return inner
        if char == "":
            raise MappingError("an expression was expected at the end")
        word = self.word()
        if self.peek() == "(":
            return self.call(word, start)
        return _field(word, start)

    def word(self) -> str:
        custom = _CUSTOM.match(self.source, self.at)
        match = custom or re.compile(r"[^\s{}()+,\"\\]+").match(self.source, self.at)
        if match is None:
            raise MappingError(f"unexpected {self.source[self.at]!r} at {self.at + 1}")
        self.at = match.end()
        return match.group(0)

    def call(self, function: str, start: int) -> Call:
        if function not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise MappingError(f"unknown function {function!r} at {start + 1} (known: {known})")
        self.at += 1  # "("
        arguments: list[Node] = []
        if self.peek() != ")":
            arguments.append(self.expression())
            while self.peek() == ",":
                self.at += 1
                arguments.append(self.expression())
        self.expect(")", start)
        fewest, most = FUNCTIONS[function]
        if not fewest <= len(arguments) <= most:
            wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
            raise MappingError(f"{function}() takes {wanted} argument(s), not {len(arguments)}")
        if function == "lookup" and not isinstance(arguments[1], Text):
            raise MappingError('lookup(value, "table"): the table is named by a plain string')
        return Call(function, tuple(arguments))

    def template(self) -> Node:
        start = self.at
        self.at += 1  # the opening quote
        parts: list[Node] = []
        text: list[str] = []
        while True:
            if self.at >= len(self.source):
                raise MappingError(f"the string opened at {start + 1} is not closed")
            char = self.source[self.at]
            pair = self.source[self.at : self.at + 2]
            if char == '"':
                self.at += 1
                break
            if pair in ("{{", "}}", '\\"', "\\\\"):
                text.append(pair[1])
                self.at += 2
            elif char == "{":
                close = self.source.find("}", self.at)
                if close < 0:
                    raise MappingError(f"the {{ at {self.at + 1} is not closed")
                if text:
                    parts.append(Text("".join(text)))
                    text = []
                parts.append(_field(self.source[self.at + 1 : close].strip(), self.at))
                self.at = close + 1
            elif char in "}\\":
                raise MappingError(f"a lone {char!r} at {self.at + 1}: write {char * 2}")
            else:
                text.append(char)
                self.at += 1
        if text or not parts:
            parts.append(Text("".join(text)))
        return parts[0] if len(parts) == 1 else Join(tuple(parts))

    def expect(self, char: str, opened: int) -> None:
        if self.peek() != char:
            raise MappingError(f"the ( at {opened + 1} is not closed")
        self.at += 1


def _field(name: str, at: int) -> Field:
    if name in FIELDS or (_CUSTOM.fullmatch(name) and name.count(".") == 1):
        return Field(name)
    known = ", ".join(sorted(FIELDS))
    raise MappingError(f"unknown field {name!r} at {at + 1} (known: {known}, custom.<key>)")


def _evaluate(node: Node, record: Record, tables: Mapping[str, Mapping[str, str]]) -> str:
    if isinstance(node, Text):
        return node.value
    if isinstance(node, Field):
        return record.get(node.name, "")
    if isinstance(node, Join):
        return "".join(_evaluate(part, record, tables) for part in node.parts)
    values = [_evaluate(argument, record, tables) for argument in node.arguments]
    if node.function == "lower":
        return values[0].lower()
    if node.function == "upper":
        return values[0].upper()
    if node.function == "trim":
        return values[0].strip()
    if node.function == "default":
        return next((v for v in values if v), "")
    table = tables.get(values[1], {})  # lookup(value, "table"): its entry, else ""
    return table.get(values[0], "")


def _fields(node: Node) -> list[str]:
    if isinstance(node, Field):
        return [node.name]
    parts = (
        node.parts if isinstance(node, Join) else node.arguments if isinstance(node, Call) else ()
    )
    return [name for part in parts for name in _fields(part)]


def _tables(node: Node) -> list[str]:
    if isinstance(node, Join):
        return [t for part in node.parts for t in _tables(part)]
    if isinstance(node, Call):
        table = node.arguments[1] if node.function == "lookup" else None
        named = [table.value] if isinstance(table, Text) else []  # the parser made it a Text
        return named + [t for argument in node.arguments for t in _tables(argument)]
    return []
