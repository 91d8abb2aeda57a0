"""passcodes record a keyed hash of their destination, for the durable send limit

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('passcodes') as batch:
        batch.add_column(sa.Column('destination_hash', sa.String(length=64), nullable=True))
    op.create_index('ix_passcodes_destination_created', 'passcodes', ['destination_hash', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_passcodes_destination_created', table_name='passcodes')
    with op.batch_alter_table('passcodes') as batch:
        batch.drop_column('destination_hash')
