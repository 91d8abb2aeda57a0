"""Bank-grade recovery (issue 14): audit origin and seals, exports, password history, contact changes,
institution settings for two channels, SIM-swap checks and security webhooks.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 16:28:59.797281
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_exports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('chain', sa.String(length=64), nullable=False),
    sa.Column('since', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('until', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('exported_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('mac', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_exports'))
    )
    with op.batch_alter_table('audit_exports', schema=None) as batch_op:
        batch_op.create_index('ix_audit_exports_chain', ['chain', 'since'], unique=False)

    op.create_table('audit_seals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('chain', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('last_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('prev_digest', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('sealed_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('purged_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('purge_mac', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_seals')),
    sa.UniqueConstraint('chain', 'seq', name='uq_audit_seals_chain_seq')
    )
    op.create_table('password_history',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('customer_pk', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.id'], name=op.f('fk_password_history_customer_pk_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_history'))
    )
    with op.batch_alter_table('password_history', schema=None) as batch_op:
        batch_op.create_index('ix_password_history_customer', ['customer_pk', 'created_at'], unique=False)

    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trusted_origin', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin_ip', sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column('user_agent', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('originating_ip', sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('seal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_events_seal_id'), ['seal_id'], unique=False)
        batch_op.create_index('ix_audit_events_unsealed', ['institution_id', 'id'], unique=False,
                              postgresql_where=sa.text('seal_id IS NULL'), sqlite_where=sa.text('seal_id IS NULL'))
        batch_op.create_foreign_key(batch_op.f('fk_audit_events_seal_id_audit_seals'), 'audit_seals', ['seal_id'], ['id'])

    with op.batch_alter_table('contact_methods', schema=None) as batch_op:
        batch_op.add_column(sa.Column('changed_at', pwreset.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recovery_assurance', sa.String(length=16), server_default=sa.text("'single'"), nullable=False))
        batch_op.add_column(sa.Column('password_factor', sa.String(length=8), server_default=sa.text("'multi'"), nullable=False))
        batch_op.add_column(sa.Column('contact_line', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('contact_cooloff', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sim_swap_check', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('sim_swap_max_age', sa.Integer(), server_default=sa.text('240'), nullable=False))
        batch_op.add_column(sa.Column('webhook_url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('webhook_secret_sealed', sa.LargeBinary(), nullable=True))

    with op.batch_alter_table('reset_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_passcode_id', sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_reset_tickets_first_passcode_id'), ['first_passcode_id'])
        batch_op.create_foreign_key(batch_op.f('fk_reset_tickets_first_passcode_id_passcodes'), 'passcodes', ['first_passcode_id'], ['id'], ondelete='CASCADE')



def downgrade() -> None:
    with op.batch_alter_table('reset_tickets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_reset_tickets_first_passcode_id_passcodes'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_reset_tickets_first_passcode_id'), type_='unique')
        batch_op.drop_column('first_passcode_id')

    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret_sealed')
        batch_op.drop_column('webhook_url')
        batch_op.drop_column('sim_swap_max_age')
        batch_op.drop_column('sim_swap_check')
        batch_op.drop_column('contact_cooloff')
        batch_op.drop_column('contact_line')
        batch_op.drop_column('password_factor')
        batch_op.drop_column('recovery_assurance')

    with op.batch_alter_table('contact_methods', schema=None) as batch_op:
        batch_op.drop_column('changed_at')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_audit_events_seal_id_audit_seals'), type_='foreignkey')
        batch_op.drop_index('ix_audit_events_unsealed')
        batch_op.drop_index(batch_op.f('ix_audit_events_seal_id'))
        batch_op.drop_column('seal_id')
        batch_op.drop_column('mac')
        batch_op.drop_column('originating_ip')
        batch_op.drop_column('user_agent')
        batch_op.drop_column('origin_ip')

    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_column('trusted_origin')

    with op.batch_alter_table('password_history', schema=None) as batch_op:
        batch_op.drop_index('ix_password_history_customer')

    op.drop_table('password_history')
    op.drop_table('audit_seals')
    with op.batch_alter_table('audit_exports', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_exports_chain')

    op.drop_table('audit_exports')
