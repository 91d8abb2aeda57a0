"""OData ``$filter`` for the Accounts API (wire contract section 8), parsed into SQL expressions.

A small recursive-descent parser: the grammar is a dozen rules, and a parser library would cost a
dependency and a start-up for less control over what is refused. Every value is a bound
parameter; a field name only ever picks one of the columns below. Anything outside the grammar is
:class:`BadFilter` (ACC_00005), and so is input past the size and nesting limits.

    filter     := or
    or         := and ("or" and)*
    and        := primary ("and" primary)*
    primary    := "(" or ")" | "contains" "(" operand "," STRING ")" | operand OP STRING
    operand    := FIELD | ("tolower" | "toupper") "(" operand ")"
    OP         := eq | ne | gt | ge | lt | le
    FIELD      := id | name | nickName | accountNumber | category | type
    STRING     := "'" ( any character but "'" | "''" )* "'"

Keywords and field names are case-sensitive, as in OData. ``name`` is the spec's name for the
``nickName`` the response shows; ``type`` compares ``type.value``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import Boolean

from pwreset.accounts.errors import BadFilter
from pwreset.accounts.models import Account

MAX_LENGTH = 1000
MAX_DEPTH = 16
MAX_TERMS = 32

FIELDS: dict[str, Any] = {
    "id": Account.id,
    "name": Account.nick_name,
    "nickName": Account.nick_name,
    "accountNumber": Account.account_number,
    "category": Account.category,
    "type": Account.type_value,
}
_COMPARE = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}
_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z][A-Za-z0-9]*)|(?P<punct>[(),]))")


class Contains(FunctionElement[bool]):
    """``contains(haystack, needle)``, case-sensitive on both databases (LIKE is not on SQLite)."""

    type = Boolean()
    inherit_cache = True
    name = "pwreset_contains"


@compiles(Contains)
def _contains_sqlite(element: Contains, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"(instr({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)}) > 0)"


@compiles(Contains, "postgresql")
def _contains_postgresql(element: Contains, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"(strpos({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)}) > 0)"


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
            raise BadFilter(f"$filter: unexpected character at position {position + 1}")
        kind = matched.lastgroup
        assert kind is not None
        out.append(_Token(kind, matched.group(kind)))
        position = matched.end()
    return out


class _Parser:
    def __init__(self, tokens: list[_Token], *, unmasked: bool) -> None:
        self.tokens = tokens
        self.unmasked = unmasked
        self.at = 0
        self.terms = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            wanted = text or {"string": "a quoted string", "word": "a name", "punct": "punctuation"}[kind]
            found = "the end" if token is None else repr(token.text)
            raise BadFilter(f"$filter: expected {wanted}, found {found}")
        self.at += 1
        return token

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text in words

    def or_(self, depth: int) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise BadFilter("$filter is nested too deeply")
        parts = [self.and_(depth)]
        while self.at_word("or"):
            self.at += 1
            parts.append(self.and_(depth))
        return parts[0] if len(parts) == 1 else or_(*parts)

    def and_(self, depth: int) -> ColumnElement[bool]:
        parts = [self.primary(depth)]
        while self.at_word("and"):
            self.at += 1
            parts.append(self.primary(depth))
        return parts[0] if len(parts) == 1 else and_(*parts)

    def primary(self, depth: int) -> ColumnElement[bool]:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise BadFilter(f"$filter has more than {MAX_TERMS} conditions")
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "(":
            self.at += 1
            inner = self.or_(depth + 1)
            self.take("punct", ")")
            return inner
        if self.at_word("contains"):
            self.at += 1
            self.take("punct", "(")
            haystack = self.operand(depth)
            self.take("punct", ",")
            needle = _literal(self.take("string").text)
            self.take("punct", ")")
            return Contains(haystack, needle)
        operand = self.operand(depth)
        if not self.at_word(*_COMPARE):
            found = self.peek()
            raise BadFilter(
                f"$filter: expected one of {', '.join(_COMPARE)}, found {'the end' if found is None else found.text!r}"
            )
        op = self.take("word").text
        return _COMPARE[op](operand, _literal(self.take("string").text))  # type: ignore[no-any-return]

    def operand(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise BadFilter("$filter is nested too deeply")
        token = self.take("word")
        if token.text in ("tolower", "toupper"):
            self.take("punct", "(")
            inner = self.operand(depth + 1)
            self.take("punct", ")")
            return func.lower(inner) if token.text == "tolower" else func.upper(inner)
        column = FIELDS.get(token.text)
        if column is None:
            raise BadFilter(f"$filter: unknown field {token.text!r}; one of {', '.join(FIELDS)}")
        if token.text == "accountNumber" and not self.unmasked:
            # A token that sees only the last four digits must not learn the rest by asking.
            raise BadFilter("$filter on accountNumber needs the accounts:read_unmasked scope")
        return column


def _literal(token: str) -> str:
    value = token[1:-1].replace("''", "'")
    if "\x00" in value:
        raise BadFilter("$filter: a string may not contain a NUL character")
    return value


def parse_filter(value: str | None, *, unmasked: bool) -> ColumnElement[bool] | None:
    """The SQL condition of a ``$filter`` (values bound as parameters), or None without one.
    ``accountNumber`` only for a token that sees whole account numbers (``unmasked``)."""
    if value is None:
        return None
    if len(value) > MAX_LENGTH:
        raise BadFilter(f"$filter is longer than {MAX_LENGTH} characters")
    tokens = _tokens(value)
    if not tokens:
        raise BadFilter("$filter is empty")
    parser = _Parser(tokens, unmasked=unmasked)
    condition = parser.or_(0)
    if parser.peek() is not None:
        raise BadFilter(f"$filter: unexpected {parser.peek().text!r}")  # type: ignore[union-attr]
    return condition
