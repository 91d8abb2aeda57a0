"""accounts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('customer_pk', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('account_number', sa.String(length=34), nullable=False),
    sa.Column('nick_name', sa.String(length=100), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('type_value', sa.String(length=32), nullable=False),
    sa.Column('fi_account_type', sa.Integer(), nullable=False),
    sa.Column('type_description', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('primary_holder_name', sa.String(length=200), nullable=True),
    sa.Column('routing_number', sa.String(length=9), nullable=True),
    sa.Column('current_currency', sa.String(length=3), nullable=True),
    sa.Column('current_amount', pwreset.db.ExactDecimal(), nullable=True),
    sa.Column('available_currency', sa.String(length=3), nullable=True),
    sa.Column('available_amount', pwreset.db.ExactDecimal(), nullable=True),
    sa.Column('status', sa.JSON(), nullable=False),
    sa.Column('allowed_actions', sa.JSON(), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.id'], name=op.f('fk_accounts_customer_pk_customers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('customer_pk', 'source_id', name='uq_accounts_customer_source')
    )
    op.create_index('ix_accounts_customer', 'accounts', ['customer_pk', 'position'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_accounts_customer', table_name='accounts')
    op.drop_table('accounts')
