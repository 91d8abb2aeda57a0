"""the deployment mark: a database belongs to a sandbox or to production

Written by the first process that starts on the database (``ops/deployment.claim``); a database
migrated before this revision is marked by the first process that starts after it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('deployment',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('marked_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployment'))
    )


def downgrade() -> None:
    op.drop_table('deployment')
