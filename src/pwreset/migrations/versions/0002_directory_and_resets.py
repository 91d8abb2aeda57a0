"""customers, contact methods, passcodes, reset tickets, outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:28:40.336183
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('customer_pk', sa.String(length=32), nullable=True),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('contact_method_id', sa.String(length=64), nullable=True),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('destination_masked', sa.String(length=64), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('available_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('not_after', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_available', ['status', 'available_at'], unique=False)

    op.create_table('customers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('login_id', sa.String(length=128), nullable=False),
    sa.Column('login_key', sa.String(length=128), nullable=False),
    sa.Column('host_user_id', sa.String(length=64), nullable=True),
    sa.Column('member_number', sa.String(length=64), nullable=True),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('registered', sa.Boolean(), nullable=False),
    sa.Column('accepted_disclosure', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('failed_login_count', sa.Integer(), nullable=False),
    sa.Column('failed_reset_count', sa.Integer(), nullable=False),
    sa.Column('reset_failures_since', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reset_blocked_until', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('password_changed_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_customers_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('institution_id', 'customer_id', name='uq_customers_institution_customer'),
    sa.UniqueConstraint('institution_id', 'login_key', name='uq_customers_institution_login')
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_host_user', ['institution_id', 'host_user_id'], unique=False)

    op.create_table('contact_methods',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('customer_pk', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('method_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('country_code', sa.String(length=4), nullable=True),
    sa.Column('contact_info', sa.String(length=320), nullable=False),
    sa.Column('destination', sa.String(length=320), nullable=False),
    sa.Column('activated', sa.Boolean(), nullable=False),
    sa.Column('validated', sa.Boolean(), nullable=False),
    sa.Column('primary', sa.Boolean(), nullable=False),
    sa.Column('enrolled_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.id'], name=op.f('fk_contact_methods_customer_pk_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_methods')),
    sa.UniqueConstraint('customer_pk', 'method_id', name='uq_contact_methods_customer_method')
    )
    with op.batch_alter_table('contact_methods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_methods_customer_pk'), ['customer_pk'], unique=False)

    op.create_table('passcodes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('customer_pk', sa.String(length=32), nullable=False),
    sa.Column('contact_method_pk', sa.String(length=32), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_method_pk'], ['contact_methods.id'], name=op.f('fk_passcodes_contact_method_pk_contact_methods'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.id'], name=op.f('fk_passcodes_customer_pk_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_passcodes'))
    )
    with op.batch_alter_table('passcodes', schema=None) as batch_op:
        batch_op.create_index('ix_passcodes_customer_created', ['customer_pk', 'created_at'], unique=False)

    op.create_table('reset_tickets',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('customer_pk', sa.String(length=32), nullable=False),
    sa.Column('passcode_id', sa.String(length=32), nullable=False),
    sa.Column('ticket_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.id'], name=op.f('fk_reset_tickets_customer_pk_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['passcode_id'], ['passcodes.id'], name=op.f('fk_reset_tickets_passcode_id_passcodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reset_tickets')),
    sa.UniqueConstraint('passcode_id', name=op.f('uq_reset_tickets_passcode_id')),
    sa.UniqueConstraint('ticket_hash', name=op.f('uq_reset_tickets_ticket_hash'))
    )
    with op.batch_alter_table('reset_tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reset_tickets_customer_pk'), ['customer_pk'], unique=False)

    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('min_password_length', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('mask_contact_info', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('mask_contact_info')
        batch_op.drop_column('min_password_length')

    with op.batch_alter_table('reset_tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reset_tickets_customer_pk'))

    op.drop_table('reset_tickets')
    with op.batch_alter_table('passcodes', schema=None) as batch_op:
        batch_op.drop_index('ix_passcodes_customer_created')

    op.drop_table('passcodes')
    with op.batch_alter_table('contact_methods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_methods_customer_pk'))

    op.drop_table('contact_methods')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_host_user')

    op.drop_table('customers')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_available')

    op.drop_table('outbox')
