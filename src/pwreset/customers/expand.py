"""``$expand`` of the institution-users operation (wire contract section 7): which lists to add,
each optionally narrowed by its own OData filter, ``contactMethods($filter=validated eq true)``.

The filter is the OData grammar of ``kit/odata.py`` over the fields the spec lists for the segment
(booleans allowed), evaluated on the rows the response shows. pwreset holds no postal addresses
and no sub-users, so their segments give empty lists, but their filters are still checked.
"""

from __future__ import annotations

import re
from typing import Any

from pwreset.errors import PwresetError
from pwreset.kit import odata

_FIELDS = {
    "contactMethods": frozenset({
        "id", "protocol", "activated", "enrolledDateTime", "telephoneCountryCode", "contactInfo", "validated", "host",
        "primary", "contactMethodType",
    }),
    "postalAddresses": frozenset({
        "id", "streetAddress1", "streetAddress2", "streetAddress3", "city", "state", "postalCode", "country",
        "primary", "postalAddressType",
    }),
    "subUsers": frozenset({
        "institutionUserId", "institutionId", "institutionUserRole", "institutionUserType", "userId", "userName",
        "lastName", "firstName", "middleName", "email", "birthDate",
    }),
}
_ALIASES = {"postalAddress": "postalAddresses"}
_SEGMENT = re.compile(r"(?P<name>[A-Za-z]+)(?:\(\$filter=(?P<filter>.*)\))?", re.DOTALL)
MAX_LENGTH = 2000

Expansion = dict[str, odata.Node | None]


class UnknownSegment(PwresetError):
    key = "request.invalid_query"
    message = "unknown $expand segment"


class BadExpandFilter(PwresetError):
    key = "users.bad_expand_filter"
    message = "invalid $filter in $expand"


def _split(value: str) -> list[str]:
    """Top-level commas only: a filter's own commas (``contains(a,'b')``) and quotes stay inside."""
    parts, depth, quoted, start = [], 0, False, 0
    for position, char in enumerate(value):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(value[start:position])
            start = position + 1
    parts.append(value[start:])
    return parts


def parse_expand(value: str | None) -> Expansion:
    """The segments asked for, each with its filter tree (None: every row)."""
    if value is None:
        return {}
    if len(value) > MAX_LENGTH:
        raise UnknownSegment(f"$expand is longer than {MAX_LENGTH} characters")
    out: Expansion = {}
    for part in _split(value):
        matched = _SEGMENT.fullmatch(part.strip())
        name = _ALIASES.get(matched.group("name"), matched.group("name")) if matched else None
        if matched is None or name not in _FIELDS:
            raise UnknownSegment(f"$expand takes {', '.join(_FIELDS)}, each optionally with ($filter=...)")
        if name in out:
            raise UnknownSegment(f"$expand names {name} twice")  # (one would silently drop the other's filter)
        text = matched.group("filter")
        try:
            out[name] = None if text is None else odata.parse(text, fields=_FIELDS[name], booleans=True)
        except odata.ODataError as exc:
            raise BadExpandFilter(f"$expand {name}: $filter: {exc}") from None
    return out


def _value(operand: odata.Operand, row: dict[str, Any]) -> Any:
    if isinstance(operand, odata.Field):
        return row.get(operand.name)
    inner = _value(operand.operand, row)
    if not isinstance(inner, str):
        return None
    return inner.lower() if operand.to == "lower" else inner.upper()


def matches(node: odata.Node, row: dict[str, Any]) -> bool:
    """Whether a shown row passes a filter. A missing field, or a value of another type than the
    literal, equals nothing and orders with nothing (``ne`` is then true)."""
    if isinstance(node, odata.Junction):
        results = (matches(part, row) for part in node.parts)
        return all(results) if node.kind == "and" else any(results)
    value = _value(node.operand, row)
    if isinstance(node, odata.Contains):
        return isinstance(value, str) and node.value in value
    comparable = value is not None and type(value) is type(node.value)
    if node.op == "eq":
        return comparable and value == node.value
    if node.op == "ne":
        return not comparable or value != node.value
    if not comparable:
        return False
    return bool({"gt": value > node.value, "ge": value >= node.value, "lt": value < node.value,
                 "le": value <= node.value}[node.op])


def select(rows: list[dict[str, Any]], node: odata.Node | None) -> list[dict[str, Any]]:
    return rows if node is None else [row for row in rows if matches(node, row)]
