"""Issue 8: client secret rotation with a grace period. The secret before
the last rotation is kept (as its HMAC) with the time it stops being
accepted; both are null when there is none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column("previous_secret_expires_at", sa.DateTime(),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret_hash")
