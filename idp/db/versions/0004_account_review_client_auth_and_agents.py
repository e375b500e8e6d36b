"""Issue 7: accounts flagged for an operator's review (an ID number released
from an account that had verified it by knowledge only), when a password
was last set by an SMS code alone, client
authentication and browser settings (strict method, allowed origins,
resource servers that may introspect any token), and agents whose
representation ended with the evidence it rested on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("review_flagged_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("password_reset_by_sms_at", sa.DateTime(),
                                      nullable=True))
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("strict_auth_method", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("allowed_origins", sa.JSON(), nullable=False,
                                      server_default="[]"))
        batch_op.add_column(sa.Column("resource_server", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ended_reason", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("ended_reason")
        batch_op.drop_column("ended_at")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("resource_server")
        batch_op.drop_column("allowed_origins")
        batch_op.drop_column("strict_auth_method")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("password_reset_by_sms_at")
        batch_op.drop_column("review_flagged_at")
        batch_op.drop_column("review_reason")
