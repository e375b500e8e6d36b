"""What the fold keeps of its work: the runs of each mapping (batches),
one record per legacy row, the conflicts waiting for review, and where
each migrated attribute of an account came from.

The accounts, their legacy links and legacy credentials are the provider's
own (idp.accounts.models); these tables are the fold's bookkeeping, and
make a second run of a mapping write nothing (idempotence) and a stopped
run resume from its last committed chunk.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.timeutil import utcnow

#: What the fold did with a legacy row (``legacy_records.outcome``).
OUTCOMES = ("imported", "merged", "conflict", "rejected", "tombstone")


class MigrationBatch(db.Model):
    """One run of a mapping (``idp migrate run``): its rows are committed
    in chunks, one transaction each, and counted here as they commit."""

    __tablename__ = "migration_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The mapping's department code.
    department: Mapped[str] = mapped_column(String(32), index=True)
    #: The mapping file, as given to the command.
    mapping: Mapped[str] = mapped_column(String(1000))
    #: The source (URL without its password, or file).
    source: Mapped[str] = mapped_column(String(1000))
    #: The encoding a file was read in; null for a database.
    encoding: Mapped[str | None] = mapped_column(String(32))
    #: ``running``, ``finished``, ``failed`` (with ``error``) or
    #: ``interrupted`` (found running when the next run of its
    #: department began: the process was killed).
    state: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    #: JSON object of the counts so far (``new``, ``matched``,
    #: ``conflicts``, ``rejected``, ``tombstones``, ``unchanged``,
    #: ``written``, ``rejected_reasons``).
    counts: Mapped[str] = mapped_column(Text, default="{}")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class LegacyRecord(db.Model):
    """One legacy row of a department, as the fold last decided it: at most
    one per (department, legacy id)."""

    __tablename__ = "legacy_records"
    __table_args__ = (
        UniqueConstraint("department", "legacy_id_index",
                         name="uq_legacy_records_department_legacy_id_index"),
        Index("ix_legacy_records_department_username_index", "department", "username_index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    department: Mapped[str] = mapped_column(String(32))
    #: The legacy id, encrypted, and its blind index under the department
    #: (the legacy link's: idp.accounts.links).
    legacy_id_enc: Mapped[str] = mapped_column(Text)
    legacy_id_index: Mapped[str] = mapped_column(String(64))
    #: The batch that last decided the row.
    batch_id: Mapped[int] = mapped_column(ForeignKey("migration_batches.id"), index=True)
    #: One of :data:`OUTCOMES`.
    outcome: Mapped[str] = mapped_column(String(16))
    #: Why it was rejected or held, or how it matched
    #: (``resident_id``, ``resident_id_15``).
    reason: Mapped[str | None] = mapped_column(String(64))
    #: The account the row belongs to; null while rejected, held in
    #: conflict, or a tombstone of nobody known.
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    #: Keyed hash of the row's mapped values and the mapping's scheme: an
    #: unchanged row is skipped by the next run.
    digest: Mapped[str] = mapped_column(String(64))
    #: The row's values as the source held them (JSON), encrypted: the
    #: audit record (the password hash is kept in its credential only).
    raw_enc: Mapped[str] = mapped_column(Text)
    #: Blind indexes of the row's normalised ID number, mobile number and
    #: case-folded login name (the login name under the department):
    #: matching and review without plaintext.
    resident_id_index: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    username_index: Mapped[str | None] = mapped_column(String(64))
    #: The legacy timestamps, UTC (naive values read in the mapping's zone).
    created_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    #: When the fold decided the row.
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class MigrationConflict(db.Model):
    """Rows that disagree on something that matters, waiting for an
    operator (``idp migrate conflicts``, ``idp migrate resolve``)."""

    __tablename__ = "migration_conflicts"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The row that could not be folded as it is.
    record_id: Mapped[int] = mapped_column(
        ForeignKey("legacy_records.id", ondelete="CASCADE"), index=True)
    #: ``name_mismatch`` (same ID number, other name), ``weak_match`` (an
    #: ID number upgraded from 15 digits, with no name to confirm it),
    #: ``shared_phone`` (same phone, other ID number), ``phone_name`` (same
    #: phone and name, no ID number to prove it: a proposed merge),
    #: ``username_case`` (two login names of one department equal but for
    #: case).
    kind: Mapped[str] = mapped_column(String(32))
    #: The account the row would be merged with.
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    #: ``open``, ``merged`` or ``kept_apart``.
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    #: Who resolved it (the operator's login name).
    resolved_by: Mapped[str | None] = mapped_column(String(64))


class AttributeProvenance(db.Model):
    """Where an account's migrated attribute came from: the department's
    trust and the row's recency decide which row's value wins a merge."""

    __tablename__ = "attribute_provenance"
    __table_args__ = (UniqueConstraint("account_id", "attribute",
                                       name="uq_attribute_provenance_account_id_attribute"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: ``name``, ``email``, ``phone_number``, ``resident_id``.
    attribute: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[int] = mapped_column(ForeignKey("legacy_records.id", ondelete="CASCADE"),
                                           index=True)
    department: Mapped[str] = mapped_column(String(32))
    #: The mapping's ``trust`` when the value was taken.
    trust: Mapped[int]
    #: The row's last login (else its creation) time, UTC: recency.
    observed_at: Mapped[datetime | None]
