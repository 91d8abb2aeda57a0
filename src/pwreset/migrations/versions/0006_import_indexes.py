"""drop two indexes that a unique constraint already covers

``ix_contact_methods_customer_pk`` is the leading column of ``uq_contact_methods_customer_method``
and ``ix_accounts_customer`` the leading column of ``uq_accounts_customer_source``: every lookup by
customer (and the cascade from customers) uses the unique index, and each extra index cost a third
of a bulk import's COPY of those rows (bench/README.md, decision 0008).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 02:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('contact_methods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_methods_customer_pk'))
    op.drop_index('ix_accounts_customer', table_name='accounts')


def downgrade() -> None:
    op.create_index('ix_accounts_customer', 'accounts', ['customer_pk', 'position'], unique=False)
    with op.batch_alter_table('contact_methods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_methods_customer_pk'), ['customer_pk'], unique=False)
