"""Encrypted personal identifiers: mobile and resident ID numbers are stored
AEAD-encrypted with a blind index (idp.accounts.pii).

The plaintext ``phone_number`` column is dropped: no release wrote to it (no
form or command set a phone number before this revision).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_number_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("phone_number_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("resident_id_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("resident_id_index", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_accounts_phone_number_index",
                                          ["phone_number_index"])
        batch_op.create_unique_constraint("uq_accounts_resident_id_index",
                                          ["resident_id_index"])
        batch_op.drop_column("phone_number")


def downgrade():
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_number", sa.String(length=32), nullable=True))
        batch_op.drop_constraint("uq_accounts_resident_id_index", type_="unique")
        batch_op.drop_constraint("uq_accounts_phone_number_index", type_="unique")
        batch_op.drop_column("resident_id_index")
        batch_op.drop_column("resident_id_enc")
        batch_op.drop_column("phone_number_index")
        batch_op.drop_column("phone_number_enc")
