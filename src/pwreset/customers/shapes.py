"""The import's row shapes, declared once: which import-format field fills which column.

Each write path of ``pwreset customers import`` (``rowwise.py`` on SQLite, ``bulk.py`` on
PostgreSQL), the validated lines between them (``lines.py``) and the exporter (``exporter.py``) take
their columns, their order and their field names from here. A new field is one :class:`Column` in
one of these tuples (and its column in ``models.py`` and a migration); the tuples keep the import's
hot loops on plain positional tuples, in the order given here.

Pure: no database, no SQLAlchemy (the import's worker processes import it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str  # the table's column
    field: str | None  # the import format's field, dotted for a nested one; None: derived, not in the file
    sql: str  # its type in a staging table

    @property
    def quoted(self) -> str:
        return f'"{self.name}"'


def names(columns: tuple[Column, ...]) -> tuple[str, ...]:
    return tuple(column.name for column in columns)


#: A customer's fields that an existing customer takes only when its line carries them (``Line.values``).
CUSTOMER_OPTIONAL = (
    Column("host_user_id", "hostUserId", "text"),
    Column("member_number", "memberNumber", "text"),
    Column("first_name", "firstName", "text"),
    Column("last_name", "lastName", "text"),
    Column("language", "language", "text"),
    Column("registered", "registered", "bool"),
    Column("accepted_disclosure", "acceptedDisclosure", "bool"),
    Column("active", "active", "bool"),
    Column("locked", "locked", "bool"),
)

#: A contact method (``Line.methods`` entries), then its place in the customer's list.
METHOD = (
    Column("method_id", "id", "text"),
    Column("protocol", "protocol", "text"),
    Column("country_code", "telephoneCountryCode", "text"),
    Column("contact_info", "contactInfo", "text"),
    Column("destination", None, "text"),
    Column("activated", "isActivated", "bool"),
    Column("validated", "validated", "bool"),
    Column("primary", "primary", "bool"),
    Column("enrolled_at", "enrolledDateTime", "timestamptz"),
)

#: An account's stored columns (``Line.accounts`` entries). Amounts stay the file's validated
#: decimal strings (PostgreSQL's driver takes them as they are for NUMERIC); the flags are JSON text.
ACCOUNT = (
    Column("position", None, "int"),
    Column("account_number", "accountNumber", "text"),
    Column("nick_name", "nickName", "text"),
    Column("description", "description", "text"),
    Column("type_value", "type.value", "text"),
    Column("fi_account_type", "type.fiAccountType", "int"),
    Column("type_description", "type.description", "text"),
    Column("category", "category", "text"),
    Column("primary_holder_name", "primaryHolderName", "text"),
    Column("routing_number", "routingNumber", "text"),
    Column("current_currency", "currentBalance.currencyCode", "text"),
    Column("current_amount", "currentBalance.amount", "numeric"),
    Column("available_currency", "availableBalance.currencyCode", "text"),
    Column("available_amount", "availableBalance.amount", "numeric"),
    Column("status", "status", "text"),
    Column("allowed_actions", "allowedActions", "text"),
)
#: The account columns compared and copied as they are (the JSON flags are compared as jsonb).
ACCOUNT_PLAIN = ACCOUNT[:-2]
ACCOUNT_FLAGS = ACCOUNT[-2:]
