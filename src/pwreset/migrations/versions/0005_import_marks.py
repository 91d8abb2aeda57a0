"""import marks, for pruning customers absent from an import

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 00:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('import_marks',
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('institution_id', 'run_id', 'customer_id', name=op.f('pk_import_marks'))
    )


def downgrade() -> None:
    op.drop_table('import_marks')
