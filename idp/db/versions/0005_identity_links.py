"""Issue 8: identity links, the identifiers an account can hold many of
(legacy user ids of departments, certificates, upstream subjects), each
encrypted with a blind index and unique under its kind and issuer
(idp.accounts.links). Made before the legacy fold loads its data into them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "identity_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("value_enc", sa.Text(), nullable=False),
        sa.Column("value_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "issuer", "value_index",
                            name="uq_identity_links_kind_issuer_value_index"),
    )
    op.create_index("ix_identity_links_account_id", "identity_links", ["account_id"])


def downgrade():
    op.drop_index("ix_identity_links_account_id", table_name="identity_links")
    op.drop_table("identity_links")
