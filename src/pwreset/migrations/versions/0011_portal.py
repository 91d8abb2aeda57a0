"""the developer portal: developers, their sessions and emailed codes, organisations with a sandbox
institution each, apps and their key pairs, watchlist interest, TOTP and recovery codes, production access
requests, invitations; institutions.sandbox

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pwreset.db

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('portal_developers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('verified_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('password_changed_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('staff', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('totp_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('totp_pending_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('totp_enabled_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
    sa.Column('totp_pending_session_id', sa.String(length=32), nullable=True),
    sa.Column('totp_pending_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('mfa_failures', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_developers')),
    sa.UniqueConstraint('email', name=op.f('uq_portal_developers_email'))
    )
    op.create_table('portal_codes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('developer_id', sa.String(length=32), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['developer_id'], ['portal_developers.id'], name=op.f('fk_portal_codes_developer_id_portal_developers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_portal_codes_code_hash'))
    )
    with op.batch_alter_table('portal_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_codes_developer_id'), ['developer_id'], unique=False)

    op.create_table('portal_organisations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sandbox_institution_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('test_drive_client_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['sandbox_institution_id'], ['institutions.id'], name=op.f('fk_portal_organisations_sandbox_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_organisations')),
    sa.UniqueConstraint('sandbox_institution_id', name=op.f('uq_portal_organisations_sandbox_institution_id'))
    )
    op.create_table('portal_recovery_codes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('developer_id', sa.String(length=32), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('used_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['developer_id'], ['portal_developers.id'], name=op.f('fk_portal_recovery_codes_developer_id_portal_developers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_recovery_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_portal_recovery_codes_code_hash'))
    )
    with op.batch_alter_table('portal_recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_recovery_codes_developer_id'), ['developer_id'], unique=False)

    op.create_table('portal_sessions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('developer_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('organisation_id', sa.String(length=32), nullable=True),
    sa.Column('factors', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['developer_id'], ['portal_developers.id'], name=op.f('fk_portal_sessions_developer_id_portal_developers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_portal_sessions_token_hash'))
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sessions_developer_id'), ['developer_id'], unique=False)

    op.create_table('portal_apps',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('organisation_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scopes', sa.String(length=500), nullable=False),
    sa.Column('environment', sa.String(length=16), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['portal_organisations.id'], name=op.f('fk_portal_apps_organisation_id_portal_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_apps'))
    )
    with op.batch_alter_table('portal_apps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_apps_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('portal_interests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('developer_id', sa.String(length=32), nullable=False),
    sa.Column('organisation_id', sa.String(length=32), nullable=False),
    sa.Column('api', sa.String(length=64), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['developer_id'], ['portal_developers.id'], name=op.f('fk_portal_interests_developer_id_portal_developers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organisation_id'], ['portal_organisations.id'], name=op.f('fk_portal_interests_organisation_id_portal_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_interests')),
    sa.UniqueConstraint('developer_id', 'api', name='uq_portal_interests_developer_api')
    )
    op.create_table('portal_invitations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('organisation_id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('invited_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invited_by'], ['portal_developers.id'], name=op.f('fk_portal_invitations_invited_by_portal_developers')),
    sa.ForeignKeyConstraint(['organisation_id'], ['portal_organisations.id'], name=op.f('fk_portal_invitations_organisation_id_portal_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_portal_invitations_token_hash'))
    )
    with op.batch_alter_table('portal_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_invitations_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('portal_memberships',
    sa.Column('organisation_id', sa.String(length=32), nullable=False),
    sa.Column('developer_id', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['developer_id'], ['portal_developers.id'], name=op.f('fk_portal_memberships_developer_id_portal_developers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organisation_id'], ['portal_organisations.id'], name=op.f('fk_portal_memberships_organisation_id_portal_organisations')),
    sa.PrimaryKeyConstraint('organisation_id', 'developer_id', name=op.f('pk_portal_memberships'))
    )
    with op.batch_alter_table('portal_memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_memberships_developer_id'), ['developer_id'], unique=False)

    op.create_table('portal_access_requests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('organisation_id', sa.String(length=32), nullable=False),
    sa.Column('app_id', sa.String(length=32), nullable=False),
    sa.Column('requested_by', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('scopes', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=320), nullable=True),
    sa.Column('decided_at', pwreset.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('production_app_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['app_id'], ['portal_apps.id'], name=op.f('fk_portal_access_requests_app_id_portal_apps')),
    sa.ForeignKeyConstraint(['organisation_id'], ['portal_organisations.id'], name=op.f('fk_portal_access_requests_organisation_id_portal_organisations')),
    sa.ForeignKeyConstraint(['requested_by'], ['portal_developers.id'], name=op.f('fk_portal_access_requests_requested_by_portal_developers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_access_requests'))
    )
    with op.batch_alter_table('portal_access_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_access_requests_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('portal_app_keys',
    sa.Column('client_id', sa.String(length=32), nullable=False),
    sa.Column('app_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', pwreset.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['portal_apps.id'], name=op.f('fk_portal_app_keys_app_id_portal_apps')),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_portal_app_keys_client_id_api_clients')),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_portal_app_keys'))
    )
    with op.batch_alter_table('portal_app_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_app_keys_app_id'), ['app_id'], unique=False)

    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sandbox', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('sandbox')

    with op.batch_alter_table('portal_app_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_app_keys_app_id'))

    op.drop_table('portal_app_keys')
    with op.batch_alter_table('portal_access_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_access_requests_organisation_id'))

    op.drop_table('portal_access_requests')
    with op.batch_alter_table('portal_memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_memberships_developer_id'))

    op.drop_table('portal_memberships')
    with op.batch_alter_table('portal_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_invitations_organisation_id'))

    op.drop_table('portal_invitations')
    op.drop_table('portal_interests')
    with op.batch_alter_table('portal_apps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_apps_organisation_id'))

    op.drop_table('portal_apps')
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sessions_developer_id'))

    op.drop_table('portal_sessions')
    with op.batch_alter_table('portal_recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_recovery_codes_developer_id'))

    op.drop_table('portal_recovery_codes')
    op.drop_table('portal_organisations')
    with op.batch_alter_table('portal_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_codes_developer_id'))

    op.drop_table('portal_codes')
    op.drop_table('portal_developers')
