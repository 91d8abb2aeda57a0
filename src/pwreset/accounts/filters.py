"""The Accounts API's ``$filter`` (wire contract section 8): the OData tree of ``kit/odata.py``
compiled into SQL, every value a bound parameter, every field one of the columns below.

Fields: ``id``, ``name`` (the spec's name for the ``nickName`` the response shows; ``nickName`` is
accepted too), ``accountNumber``, ``category``, ``type`` (``type.value``). ``accountNumber`` only
for a token that sees whole numbers: one that sees the last four digits must not learn the rest by
asking. A filter outside the grammar is ACC_00005.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import Boolean

from pwreset.accounts.errors import BadFilter
from pwreset.accounts.models import Account
from pwreset.kit import odata

FIELDS: dict[str, Any] = {
    "id": Account.id,
    "name": Account.nick_name,
    "nickName": Account.nick_name,
    "accountNumber": Account.account_number,
    "category": Account.category,
    "type": Account.type_value,
}
_NAMES = frozenset(FIELDS)
_COMPARE = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}


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


def _operand(node: odata.Operand) -> Any:
    if isinstance(node, odata.Field):
        return FIELDS[node.name]
    inner = _operand(node.operand)
    return func.lower(inner) if node.to == "lower" else func.upper(inner)


def _sql(node: odata.Node) -> ColumnElement[bool]:
    if isinstance(node, odata.Junction):
        parts = [_sql(part) for part in node.parts]
        return and_(*parts) if node.kind == "and" else or_(*parts)
    if isinstance(node, odata.Contains):
        return Contains(_operand(node.operand), node.value)
    return _COMPARE[node.op](_operand(node.operand), node.value)  # type: ignore[no-any-return]


def parse_filter(value: str | None, *, unmasked: bool) -> ColumnElement[bool] | None:
    """The SQL condition of a ``$filter``, or None without one."""
    if value is None:
        return None
    try:
        tree = odata.parse(value, fields=_NAMES)
    except odata.ODataError as exc:
        raise BadFilter(f"$filter: {exc}") from None
    if "accountNumber" in odata.fields_of(tree) and not unmasked:
        raise BadFilter("$filter on accountNumber needs the accounts:read_unmasked scope")
    return _sql(tree)
