"""The OData grammar (kit/odata.py): what it builds, what it refuses, and that nothing reaches
anything but a tree or ODataError, whatever the input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pwreset.kit import odata

FIELDS = frozenset({"id", "name", "validated"})


def test_precedence_and_parentheses():
    tree = odata.parse("id eq 'a' or id eq 'b' and name ne 'c'", fields=FIELDS)
    assert isinstance(tree, odata.Junction) and tree.kind == "or"
    assert isinstance(tree.parts[1], odata.Junction) and tree.parts[1].kind == "and"
    grouped = odata.parse("(id eq 'a' or id eq 'b') and name ne 'c'", fields=FIELDS)
    assert isinstance(grouped, odata.Junction) and grouped.kind == "and"


def test_literals():
    assert odata.parse("name eq 'it''s'", fields=FIELDS) == odata.Compare("eq", odata.Field("name"), "it's")
    assert odata.parse("validated eq true", fields=FIELDS, booleans=True).value is True
    with pytest.raises(odata.ODataError):
        odata.parse("validated eq true", fields=FIELDS)  # booleans only where the caller allows them
    tree = odata.parse("contains(tolower(name), 'x')", fields=FIELDS)
    assert tree == odata.Contains(odata.Case("lower", odata.Field("name")), "x")
    assert odata.fields_of(odata.parse("id eq 'a' or contains(toupper(name), 'b')", fields=FIELDS)) == {"id", "name"}


@pytest.mark.parametrize("value", [
    "", "   ", "id", "id eq", "id eq x", "id = 'a'", "ID eq 'a'", "other eq 'a'", "id eq 'a' and", "(id eq 'a'",
    "id eq 'a')", "not id eq 'a'", "id eq 'a\x00'", "id eq \"a\"", "contains(id)", "tolower(id, 'a') eq 'a'",
    "id in ('a')", "x" * 1001, "(" * 40 + "id eq 'a'" + ")" * 40, " or ".join(["id eq 'a'"] * 40), "id eq 'a';",
])
def test_refused(value):
    with pytest.raises(odata.ODataError):
        odata.parse(value, fields=FIELDS)


_PIECES = st.sampled_from([
    "id", "name", "validated", "eq", "ne", "gt", "and", "or", "contains", "tolower", "(", ")", ",", "'a'", "''",
    "'", "true", " ", "x", "\x00", "$", "1",
])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=30).map(" ".join)))
def test_any_input_is_a_tree_or_a_clear_refusal(value):
    try:
        tree = odata.parse(value, fields=FIELDS, booleans=True)
    except odata.ODataError:
        return
    assert odata.fields_of(tree) <= FIELDS
