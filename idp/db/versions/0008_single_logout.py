"""Issue 11: single logout and CAS. Clients register their OpenID Connect
Back-Channel and Front-Channel Logout 1.0 URIs; CAS services are clients
with service URLs and proxy callbacks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backchannel_logout_uri", sa.String(length=2000),
                                      nullable=True))
        batch_op.add_column(sa.Column("backchannel_logout_session_required", sa.Boolean(),
                                      nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("frontchannel_logout_uri", sa.String(length=2000),
                                      nullable=True))
        batch_op.add_column(sa.Column("frontchannel_logout_session_required", sa.Boolean(),
                                      nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("cas_services", sa.JSON(none_as_null=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("cas_proxy_callbacks", sa.JSON(none_as_null=True),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("cas_proxy_callbacks")
        batch_op.drop_column("cas_services")
        batch_op.drop_column("frontchannel_logout_session_required")
        batch_op.drop_column("frontchannel_logout_uri")
        batch_op.drop_column("backchannel_logout_session_required")
        batch_op.drop_column("backchannel_logout_uri")
