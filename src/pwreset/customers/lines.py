"""Reading and validating the lines of an import file (contract section 10), as plain data.

Pure functions with no database: :func:`prepare` turns a batch of raw lines into :class:`Line`
tuples (validated, normalised, ready for either write path) and the refusals. It is what
``importer.py`` runs in worker processes on a large file, so a ``Line`` holds only built-in values
(a pickled pydantic model costs more to send between processes than to validate again), and this
module imports neither SQLAlchemy nor the database layer.
"""

from __future__ import annotations

import csv
import gc
import json
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from functools import lru_cache
from operator import attrgetter
from typing import Any, NamedTuple, TextIO

from pydantic import ValidationError

from pwreset.accounts.catalogue import TYPES
from pwreset.accounts.schemas import AccountIn
from pwreset.customers.contact import InvalidContact, normalise
from pwreset.customers.schemas import ContactMethodIn, CustomerIn
from pwreset.customers.shapes import CUSTOMER_OPTIONAL, names
from pwreset.kit.text import storable, unstorable_at
from pwreset.passwords.hashing import PasswordHashing, UnsupportedHash, scheme_of

#: Import-format field -> column, for the fields an existing customer takes only when its line
#: carries them (both write paths use this; ``Line.present`` has one bit per column).
OPTIONAL_FIELDS = {column.field: column.name for column in CUSTOMER_OPTIONAL if column.field is not None}
FIELDS = names(CUSTOMER_OPTIONAL)
BIT = {name: 1 << n for n, name in enumerate(FIELDS)}
ALL = sum(BIT.values())

_BOOLEAN_COLUMNS = {"registered", "acceptedDisclosure", "active", "locked"}
_JSON_COLUMNS = {"contactMethods", "accounts"}

Raw = str | dict[str, Any] | ValueError
"""A line as read: JSON text, a CSV record, or the reason it could not be read."""


NOT_UTF8 = "not UTF-8 text: save the file as UTF-8"
UNSTORABLE = "holds a NUL character or bytes that are not UTF-8, which no database can store"


class LineError(ValueError):
    pass


class Line(NamedTuple):
    """A line that passed validation, normalised."""

    number: int
    customer_id: str
    login_id: str  # as the customer types it, trimmed
    login_key: str  # case-folded: login ids are unique per institution, case-insensitively
    values: tuple[Any, ...]  # shapes.CUSTOMER_OPTIONAL, defaults filled in
    present: int  # BIT of each of the FIELDS the line carries
    password: str | None
    password_hash: str | None
    methods: tuple[tuple[Any, ...], ...]  # shapes.METHOD; enrolled_at in UTC
    accounts: tuple[tuple[str, tuple[Any, ...]], ...] | None  # (file's account id, shapes.ACCOUNT); None: not carried


def login_key(login_id: str) -> str:
    return login_id.strip().casefold()


def read_records(stream: TextIO, *, fmt: str) -> Iterator[tuple[int, Raw]]:
    """(line number, raw line), streaming. JSON Lines stay text until :func:`prepare` parses them
    (in a worker process, on a large file); CSV is read here (a quoted field may span lines)."""
    if fmt == "csv":
        reader = csv.DictReader(stream)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # (a NUL byte, before Python 3.13), the reader goes on after it
                yield reader.line_num, LineError(f"not CSV: {exc}")
                continue
            number = reader.line_num
            try:
                yield number, _csv_record(row)
            except LineError as exc:
                yield number, exc
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        if not storable(line) and any("\udc80" <= ch <= "\udcff" for ch in line):
            # Bytes that are not UTF-8, kept as surrogate escapes by a stream read that way (stdin).
            yield number, LineError(NOT_UTF8)
        else:
            yield number, line


def _csv_record(row: dict[str | None, Any]) -> dict[str, Any]:
    if None in row:
        raise LineError("more values than columns")
    record: dict[str, Any] = {}
    for key, value in row.items():
        assert key is not None
        if value is None or value == "":
            continue
        if key in _BOOLEAN_COLUMNS:
            if value.lower() not in ("true", "false"):
                raise LineError(f"{key}: expected true or false")
            record[key] = value.lower() == "true"
        elif key in _JSON_COLUMNS:
            try:
                record[key] = json.loads(value)
            except json.JSONDecodeError:
                raise LineError(f"{key}: not JSON") from None
        else:
            record[key] = value
    return record


def prepare(batch: Sequence[tuple[int, Raw]]) -> tuple[list[Line], list[tuple[int, str]]]:
    """Validate and normalise a batch: its good lines, and (line number, reason) for the others.
    A customer id or login id that appears twice in the batch is refused the second time."""
    lines: list[Line] = []
    refused: list[tuple[int, str]] = []
    by_customer: dict[str, int] = {}
    by_login: dict[str, tuple[str, int]] = {}
    for number, raw in batch:
        try:
            line = _line(number, raw)
            if line.customer_id in by_customer:
                raise LineError(f"customer {line.customer_id} is also on line {by_customer[line.customer_id]}")
            holder = by_login.get(line.login_key)
            if holder is not None and holder[0] != line.customer_id:
                raise LineError(f"loginId {line.login_id!r} belongs to customer {holder[0]} (line {holder[1]})")
        except LineError as exc:
            refused.append((number, str(exc)))
            continue
        by_customer[line.customer_id] = number
        by_login[line.login_key] = (line.customer_id, number)
        lines.append(line)
    return lines, refused


def settle_gc() -> None:
    """The garbage collector's settings for a process that validates or writes a large import.
    What is loaded by now (modules, settings: hundreds of thousands of objects) is left out of
    collections for good, and young collections come every 10,000 new objects instead of 700. A
    batch makes a few hundred thousand objects that live until it is written, so the collector
    went through all of them, and the modules, again and again: 15 % of a worker's time."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def start_worker(parent: int) -> None:
    """A validating worker process's setup. Ctrl-C is the importing process's to handle (it stops
    the pool). A worker runs at a lower priority (nice 10) than the importing process and the
    database, which write one batch after another while the workers run batches ahead: given the
    same share of two cores, the workers slowed the writing, which bounds the import (a million
    customers: 61 s to 57 s). And a worker does not outlive the importing process: killed outright
    (kill -9, the OOM killer), that process leaves its workers waiting on a queue whose other end
    they hold themselves, forever; a thread here ends the worker once its parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):  # (not on Windows)
        os.nice(10)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="pwreset-parent-watch", daemon=True).start()
    settle_gc()


def prepare_plain(batch: Sequence[tuple[int, Raw]]) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
    """:func:`prepare` for a worker process: the lines as plain tuples, which pickle in C (a named
    tuple pickles through Python code, which cost more than the rest of the transfer). The garbage
    collector is off meanwhile: a batch's objects all live until it is sent, so collecting while it
    is built only walks them again and again (6 % of the time); what a batch leaves is collected
    after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        lines, refused = prepare(batch)
        return [tuple(line) for line in lines], refused
    finally:
        if enabled:
            gc.enable()


def as_lines(plain: list[tuple[Any, ...]]) -> list[Line]:
    """What :func:`prepare_plain` sent, as :class:`Line` again."""
    return [tuple.__new__(Line, values) for values in plain]


def _line(number: int, raw: Raw) -> Line:
    if isinstance(raw, ValueError):
        raise LineError(str(raw))
    try:
        record = CustomerIn.model_validate_json(raw) if isinstance(raw, str) else CustomerIn.model_validate(raw)
    except ValidationError as exc:
        raise LineError(_describe(exc)) from None
    if record.passwordHash is not None:
        try:
            scheme_of(record.passwordHash)
        except UnsupportedHash as exc:
            raise LineError(f"passwordHash: {exc}") from None
    where = unstorable_at(record)
    if where is not None:
        raise LineError(f"{where}: {UNSTORABLE}")
    carried = record.model_fields_set
    return Line(
        number,
        record.customerId,
        record.loginId.strip(),
        login_key(record.loginId),
        _optional_values(record),
        _present(frozenset(carried)),
        record.password,
        record.passwordHash,
        tuple([_method(m) for m in record.contactMethods]),
        (tuple([(a.id, account_columns(a, n)) for n, a in enumerate(record.accounts)])
         if "accounts" in carried else None),
    )


_optional_values = attrgetter(*OPTIONAL_FIELDS)  # the FIELDS of a CustomerIn, as a tuple


@lru_cache(maxsize=512)
def _present(carried: frozenset[str]) -> int:
    """``Line.present`` for the fields a line carries (a file's lines mostly carry the same ones)."""
    return sum(BIT[column] for name, column in OPTIONAL_FIELDS.items() if name in carried)


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return f"not JSON: {first.get('ctx', {}).get('error', 'invalid')}"
    where = ".".join(str(part) for part in first.get("loc", ()))
    if first["type"] == "model_type" and not where:
        return "a line must be a JSON object"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _method(method: ContactMethodIn) -> tuple[Any, ...]:
    try:
        contact = normalise(method.protocol, method.contactInfo, method.telephoneCountryCode)
    except InvalidContact as exc:
        raise LineError(f"contactMethods[{method.id}]: {exc}") from None
    enrolled = method.enrolledDateTime
    if enrolled is not None and enrolled.tzinfo is None:
        enrolled = enrolled.replace(tzinfo=UTC)
    return (  # in the order of shapes.METHOD
        method.id, contact.protocol, contact.country_code, contact.contact_info, contact.destination,
        method.isActivated, method.validated, method.primary, enrolled,
    )


def account_columns(account: AccountIn, position: int) -> tuple[Any, ...]:
    """The stored columns of an imported account, in the order of ``shapes.ACCOUNT`` (the catalogue
    fills what the file leaves out)."""
    fi_type, description, _category = TYPES[account.type.value]
    current, available = account.currentBalance, account.availableBalance
    return (
        position, account.accountNumber, account.nickName, account.description, account.type.value,
        account.type.fiAccountType if account.type.fiAccountType is not None else fi_type,
        account.type.description or description, account.category, account.primaryHolderName,
        account.routingNumber,
        current.currencyCode if current else None, current.amount if current else None,
        available.currencyCode if available else None, available.amount if available else None,
        _flags_json(tuple(sorted(account.status.items()))), _flags_json(tuple(sorted(account.allowedActions.items()))),
    )


@lru_cache(maxsize=1024)
def _flags_json(flags: tuple[tuple[str, bool], ...]) -> str:
    """Status and allowed-action flags as JSON text (a handful of distinct sets in a whole file)."""
    return json.dumps(dict(flags), sort_keys=True)


@dataclass
class Tally:
    """What a batch's lines came to."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def initial_password_hash(hashing: PasswordHashing, line: Line, current: str | None) -> str | None:
    """A file's password is an initial one: it never replaces a password the customer has.
    (:func:`prepare` has already refused a ``passwordHash`` of an unknown scheme.)"""
    if line.password_hash is not None:
        return current or line.password_hash
    if line.password is not None and not current:
        return hashing.hash(line.password)
    return current


class Holders:
    """Who holds each login key a batch names (both write paths), kept current in file order as its
    lines move logins: a login id one line gives up, a later line may take."""

    def __init__(self, rows: Iterable[tuple[str, str]]) -> None:
        self._by_key = dict(rows)  # login key -> customer id

    def refusal(self, line: Line) -> str | None:
        """Why the line cannot have its login id, if another customer holds it."""
        holder = self._by_key.get(line.login_key)
        if holder is not None and holder != line.customer_id:
            return f"loginId {line.login_id!r} belongs to customer {holder}"
        return None

    def took(self, line: Line, previous_key: str | None) -> None:
        """The line's customer now holds its login key, and no longer ``previous_key``."""
        if previous_key is not None and self._by_key.get(previous_key) == line.customer_id:
            del self._by_key[previous_key]
        self._by_key[line.login_key] = line.customer_id
