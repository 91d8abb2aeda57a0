"""account types become Candescent's DIAccountType values

pwreset named account types its own way (``AUTO_LOAN``, ``CERTIFICATE`` ...); the spec's
``Account.type.value`` is a ``DIAccountType``. Stored accounts take the value each old name
became (``accounts/catalogue.FORMER_TYPES``, copied here so the migration never changes).
Downgrade restores the old names where the mapping is one to one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMER_TYPES = {
    "CERTIFICATE": "CERT_OF_DEPOSIT", "LOAN": "CONSUMER_LOAN", "AUTO_LOAN": "CONSUMER_LOAN",
    "MORTGAGE": "MORTGAGE_LOAN", "CREDIT_CARD": "CREDIT_CARD_LOAN", "LINE_OF_CREDIT": "LINE_OF_CREDIT_LOAN",
    "HOME_EQUITY_LINE": "HOME_EQUITY_LOAN", "INVESTMENT": "BROKERAGE", "RETIREMENT": "RETIREMENT_IRA",
}


def upgrade() -> None:
    for old, new in FORMER_TYPES.items():
        op.execute(sa.text("UPDATE accounts SET type_value = :new WHERE type_value = :old").bindparams(old=old, new=new))


def downgrade() -> None:
    for old, new in FORMER_TYPES.items():
        if old in ("LOAN", "AUTO_LOAN"):
            continue  # both became CONSUMER_LOAN; LOAN is restored below
        op.execute(sa.text("UPDATE accounts SET type_value = :old WHERE type_value = :new").bindparams(old=old, new=new))
    op.execute(sa.text("UPDATE accounts SET type_value = 'LOAN' WHERE type_value = 'CONSUMER_LOAN'"))
