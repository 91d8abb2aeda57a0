"""OData ``$filter`` expressions as Candescent's spec uses them, parsed into a small tree.

A recursive-descent parser: the grammar is a dozen rules, and a parser library would cost a
dependency for less control over what is refused. The Accounts API compiles the tree into bound
SQL (``accounts/filters.py``); the institution-users ``$expand`` segments evaluate it on the rows
they show (``customers/expand.py``). Anything outside the grammar, or past the size and nesting
limits, is :class:`ODataError`, which each caller maps to its family's code.

    filter     := or
    or         := and ("or" and)*
    and        := primary ("and" primary)*
    primary    := "(" or ")" | "contains" "(" operand "," STRING ")" | operand OP literal
    operand    := FIELD | ("tolower" | "toupper") "(" operand ")"
    OP         := eq | ne | gt | ge | lt | le
    literal    := STRING | true | false          (true and false where the caller allows them)
    STRING     := "'" ( any character but "'" | "''" )* "'"

Keywords and field names are case-sensitive, as in OData; the caller names the fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Union

MAX_LENGTH = 1000
MAX_DEPTH = 16
MAX_TERMS = 32
OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z][A-Za-z0-9]*)|(?P<punct>[(),]))")


class ODataError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Case:
    """``tolower(x)`` or ``toupper(x)``."""

    to: Literal["lower", "upper"]
    operand: Operand


Operand = Union[Field, Case]  # noqa: UP007 - a runtime alias of a recursive type
Value = str | bool


@dataclass(frozen=True)
class Compare:
    op: str  # one of OPERATORS
    operand: Operand
    value: Value


@dataclass(frozen=True)
class Contains:
    operand: Operand
    value: str


@dataclass(frozen=True)
class Junction:
    kind: Literal["and", "or"]
    parts: tuple[Node, ...]


Node = Union[Compare, Contains, Junction]  # noqa: UP007


def fields_of(node: Node | Operand) -> set[str]:
    """Every field a tree names."""
    if isinstance(node, Field):
        return {node.name}
    if isinstance(node, Case | Compare | Contains):
        return fields_of(node.operand)
    return set().union(*(fields_of(part) for part in node.parts))


@dataclass
class _Token:
    kind: str  # string, word, punct
    text: str


def _tokens(value: str) -> list[_Token]:
    out: list[_Token] = []
    position = 0
    while position < len(value):
        if value[position:].isspace():
            break
        matched = _TOKEN.match(value, position)
        if matched is None:
            raise ODataError(f"unexpected character at position {position + 1}")
        kind = matched.lastgroup
        assert kind is not None
        out.append(_Token(kind, matched.group(kind)))
        position = matched.end()
    return out


class _Parser:
    def __init__(self, tokens: list[_Token], *, fields: frozenset[str], booleans: bool) -> None:
        self.tokens = tokens
        self.fields = fields
        self.booleans = booleans
        self.at = 0
        self.terms = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            wanted = text or {"string": "a quoted string", "word": "a name", "punct": "punctuation"}[kind]
            found = "the end" if token is None else repr(token.text)
            raise ODataError(f"expected {wanted}, found {found}")
        self.at += 1
        return token

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text in words

    def or_(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ODataError("nested too deeply")
        parts = [self.and_(depth)]
        while self.at_word("or"):
            self.at += 1
            parts.append(self.and_(depth))
        return parts[0] if len(parts) == 1 else Junction("or", tuple(parts))

    def and_(self, depth: int) -> Node:
        parts = [self.primary(depth)]
        while self.at_word("and"):
            self.at += 1
            parts.append(self.primary(depth))
        return parts[0] if len(parts) == 1 else Junction("and", tuple(parts))

    def primary(self, depth: int) -> Node:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise ODataError(f"more than {MAX_TERMS} conditions")
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "(":
            self.at += 1
            inner = self.or_(depth + 1)
            self.take("punct", ")")
            return inner
        if self.at_word("contains"):
            self.at += 1
            self.take("punct", "(")
            operand = self.operand(depth)
            self.take("punct", ",")
            needle = _string(self.take("string").text)
            self.take("punct", ")")
            return Contains(operand, needle)
        operand = self.operand(depth)
        if not self.at_word(*OPERATORS):
            found = self.peek()
            raise ODataError(
                f"expected one of {', '.join(OPERATORS)}, found {'the end' if found is None else found.text!r}"
            )
        op = self.take("word").text
        return Compare(op, operand, self.literal())

    def literal(self) -> Value:
        if self.booleans and self.at_word("true", "false"):
            return self.take("word").text == "true"
        return _string(self.take("string").text)

    def operand(self, depth: int) -> Operand:
        if depth > MAX_DEPTH:
            raise ODataError("nested too deeply")
        token = self.take("word")
        if token.text in ("tolower", "toupper"):
            self.take("punct", "(")
            inner = self.operand(depth + 1)
            self.take("punct", ")")
            return Case("lower" if token.text == "tolower" else "upper", inner)
        if token.text not in self.fields:
            raise ODataError(f"unknown field {token.text!r}; one of {', '.join(sorted(self.fields))}")
        return Field(token.text)


def _string(token: str) -> str:
    value = token[1:-1].replace("''", "'")
    if "\x00" in value:
        raise ODataError("a string may not contain a NUL character")
    return value


def parse(value: str, *, fields: frozenset[str], booleans: bool = False) -> Node:
    """The tree of a ``$filter`` over ``fields``; ``true``/``false`` literals only with ``booleans``."""
    if len(value) > MAX_LENGTH:
        raise ODataError(f"longer than {MAX_LENGTH} characters")
    tokens = _tokens(value)
    if not tokens:
        raise ODataError("empty")
    parser = _Parser(tokens, fields=fields, booleans=booleans)
    tree = parser.or_(0)
    if (extra := parser.peek()) is not None:
        raise ODataError(f"unexpected {extra.text!r}")
    return tree
