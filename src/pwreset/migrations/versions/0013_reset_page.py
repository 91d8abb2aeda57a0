"""The hosted reset page (issue 15): flows, decoys, institutions' looks and page templates.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 19:43:08.192823
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('page_branding',
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('accent_color', sa.String(length=7), nullable=True),
    sa.Column('header_color', sa.String(length=7), nullable=True),
    sa.Column('logo', sa.LargeBinary(), nullable=True),
    sa.Column('logo_type', sa.String(length=32), nullable=True),
    sa.Column('sign_in_url', sa.String(length=500), nullable=True),
    sa.Column('frame_ancestors', sa.String(length=1000), nullable=True),
    sa.Column('updated_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_page_branding_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('institution_id', name=op.f('pk_page_branding'))
    )
    op.create_table('page_templates',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('updated_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_page_templates_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_page_templates')),
    sa.UniqueConstraint('institution_id', 'name', name='uq_page_templates_name')
    )
    op.create_table('reset_flows',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('customer_pk', sa.String(length=32), nullable=True),
    sa.Column('decoy', sa.String(length=64), nullable=True),
    sa.Column('step', sa.String(length=16), nullable=False),
    sa.Column('method_pk', sa.String(length=32), nullable=True),
    sa.Column('first_method_pk', sa.String(length=32), nullable=True),
    sa.Column('code_expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ticket_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.id'], name=op.f('fk_reset_flows_customer_pk_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_reset_flows_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reset_flows')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_reset_flows_token_hash'))
    )
    op.create_table('reset_decoys',
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('destinations', sa.Text(), nullable=False),
    sa.Column('code_expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('failures_since', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('blocked_until', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_reset_decoys_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seed', name=op.f('pk_reset_decoys'))
    )
    with op.batch_alter_table('reset_decoys', schema=None) as batch_op:
        batch_op.create_index('ix_reset_decoys_used', ['used_at'], unique=False)
    with op.batch_alter_table('reset_flows', schema=None) as batch_op:
        batch_op.create_index('ix_reset_flows_expires', ['expires_at'], unique=False)
        batch_op.create_index('ix_reset_flows_customer_pk', ['customer_pk'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reset_flows', schema=None) as batch_op:
        batch_op.drop_index('ix_reset_flows_customer_pk')
        batch_op.drop_index('ix_reset_flows_expires')

    op.drop_table('reset_flows')
    with op.batch_alter_table('reset_decoys', schema=None) as batch_op:
        batch_op.drop_index('ix_reset_decoys_used')
    op.drop_table('reset_decoys')
    op.drop_table('page_templates')
    op.drop_table('page_branding')
