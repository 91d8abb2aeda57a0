"""a client's previous secret, accepted until the grace period of its rotation ends

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_clients') as batch:
        batch.add_column(sa.Column('previous_secret_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('previous_secret_expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_clients') as batch:
        batch.drop_column('previous_secret_expires_at')
        batch.drop_column('previous_secret_hash')
