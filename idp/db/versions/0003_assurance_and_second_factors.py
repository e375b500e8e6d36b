"""Identity assurance and second factors: verification evidence, TOTP and
recovery codes, encrypted card numbers, pairwise subjects, kiosk clients,
legal entities and their legal representatives (agents).

Existing clients keep public subjects (their relying parties already know
them); new clients are pairwise by default (idp.clients.service).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_number_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("card_number_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("verified_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("reverification_required", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.create_unique_constraint("uq_accounts_card_number_index", ["card_number_index"])
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject_type", sa.String(length=16), nullable=False,
                                      server_default="public"))
        batch_op.add_column(sa.Column("sector_identifier", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("sector_identifier_uri", sa.String(length=512),
                                      nullable=True))
        batch_op.add_column(sa.Column("min_acr", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("kiosk", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        "verification_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_verification_evidence_account_id", "verification_evidence",
                    ["account_id"])
    op.create_table(
        "totp_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    op.create_index("ix_recovery_codes_account_id", "recovery_codes", ["account_id"])
    op.create_table(
        "legal_entities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uscc"),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["entity_id"], ["legal_entities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entity_id", "account_id"),
    )
    op.create_index("ix_agents_entity_id", "agents", ["entity_id"])
    op.create_index("ix_agents_account_id", "agents", ["account_id"])


def downgrade():
    op.drop_index("ix_agents_account_id", table_name="agents")
    op.drop_index("ix_agents_entity_id", table_name="agents")
    op.drop_table("agents")
    op.drop_table("legal_entities")
    op.drop_index("ix_recovery_codes_account_id", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_table("totp_credentials")
    op.drop_index("ix_verification_evidence_account_id", table_name="verification_evidence")
    op.drop_table("verification_evidence")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("kiosk")
        batch_op.drop_column("min_acr")
        batch_op.drop_column("sector_identifier_uri")
        batch_op.drop_column("sector_identifier")
        batch_op.drop_column("subject_type")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_accounts_card_number_index", type_="unique")
        batch_op.drop_column("session_generation")
        batch_op.drop_column("is_admin")
        batch_op.drop_column("reverification_required")
        batch_op.drop_column("verified_name")
        batch_op.drop_column("card_number_index")
        batch_op.drop_column("card_number_enc")
