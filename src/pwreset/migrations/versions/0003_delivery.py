"""delivery: outbox claims and provider references, message templates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('language', sa.String(length=16), nullable=False, server_default='en'))
        batch.add_column(sa.Column('claim', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('provider_ref', sa.String(length=128), nullable=True))
    with op.batch_alter_table('outbox') as batch:
        batch.alter_column('language', server_default=None)
    op.create_table('message_templates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('updated_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_templates')),
    sa.UniqueConstraint('institution_id', 'kind', 'channel', 'language', name='uq_message_templates_key')
    )


def downgrade() -> None:
    op.drop_table('message_templates')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('provider_ref')
        batch.drop_column('claim')
        batch.drop_column('language')
