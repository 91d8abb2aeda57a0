"""Text a database can store: both backends refuse the same input, before either sees it.

PostgreSQL's text types cannot hold NUL and its UTF-8 cannot hold a lone surrogate (``"\\ud800"`` in
JSON); SQLite stores both. Input holding either is refused at the edge (the family's 400), or, where
the value is only ever compared with stored values (credentials in a form or a header), replaced by
U+FFFD, which matches nothing stored, as the value itself could not.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> bool:
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scrub(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD."""
    if storable(value):
        return value
    return _UNSTORABLE.sub(REPLACEMENT, value)


def all_storable(value: Any) -> bool:
    """Every string in a parsed body (a model, or the lists and dicts in it) is storable."""
    return unstorable_at(value) is None


def unstorable_at(value: Any, path: str = "") -> str | None:
    """Where the first unstorable string in ``value`` is (``contactMethods.0.contactInfo``), or None.
    The path is the root's own (``""``) when ``value`` itself is the string."""
    if isinstance(value, str):
        return None if storable(value) else path
    if isinstance(value, BaseModel):
        items: Any = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and not storable(key):
                return f"{path}.{scrub(key)}".lstrip(".")
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for name, item in items:
        found = unstorable_at(item, f"{path}.{name}".lstrip("."))
        if found is not None:
            return found
    return None
