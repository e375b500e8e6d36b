"""Issue 10: the legacy fold. Legacy credentials (a department's hash kept
until first login), the fold's runs, records, conflicts and attribute
provenance (migration.models), and the flag that makes a weak legacy
password be changed before the account goes on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_change_required", sa.Boolean(),
                                      nullable=False, server_default=sa.false()))
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department", sa.String(length=32), nullable=True))
    op.create_table(
        "legacy_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("scheme", sa.String(length=1000), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("pepper_env", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["link_id"], ["identity_links.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_id"),
    )
    op.create_index("ix_legacy_credentials_account_id", "legacy_credentials", ["account_id"])
    op.create_table(
        "migration_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("mapping", sa.String(length=1000), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("encoding", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_migration_batches_department", "migration_batches", ["department"])
    op.create_table(
        "legacy_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("legacy_id_enc", sa.Text(), nullable=False),
        sa.Column("legacy_id_index", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("raw_enc", sa.Text(), nullable=False),
        sa.Column("resident_id_index", sa.String(length=64), nullable=True),
        sa.Column("phone_index", sa.String(length=64), nullable=True),
        sa.Column("username_index", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["batch_id"], ["migration_batches.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("department", "legacy_id_index",
                            name="uq_legacy_records_department_legacy_id_index"),
    )
    op.create_index("ix_legacy_records_batch_id", "legacy_records", ["batch_id"])
    op.create_index("ix_legacy_records_account_id", "legacy_records", ["account_id"])
    op.create_index("ix_legacy_records_resident_id_index", "legacy_records",
                    ["resident_id_index"])
    op.create_index("ix_legacy_records_phone_index", "legacy_records", ["phone_index"])
    op.create_index("ix_legacy_records_department_username_index", "legacy_records",
                    ["department", "username_index"])
    op.create_table(
        "migration_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["legacy_records.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_migration_conflicts_record_id", "migration_conflicts", ["record_id"])
    op.create_index("ix_migration_conflicts_account_id", "migration_conflicts", ["account_id"])
    op.create_table(
        "attribute_provenance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("trust", sa.Integer(), nullable=False),
        sa.Column("observed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["record_id"], ["legacy_records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "attribute",
                            name="uq_attribute_provenance_account_id_attribute"),
    )
    op.create_index("ix_attribute_provenance_record_id", "attribute_provenance", ["record_id"])


def downgrade():
    op.drop_table("attribute_provenance")
    op.drop_table("migration_conflicts")
    op.drop_table("legacy_records")
    op.drop_table("migration_batches")
    op.drop_table("legacy_credentials")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("department")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("password_change_required")
