"""Audit event persistence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.timeutil import utcnow


class AuditEvent(db.Model):
    """One security-relevant event. Never updated or deleted by the application."""

    __tablename__ = "audit_events"

    #: Order of writing: events of the deferred writer (idp.audit.writer)
    #: reach the table up to its interval after the ones written with their
    #: change, so events are read in the order of ``created_at``.
    id: Mapped[int] = mapped_column(primary_key=True)
    #: When the event happened, UTC.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    #: Event type, e.g. ``login.success``, ``token.issued``, ``client.created``.
    event: Mapped[str] = mapped_column(String(64), index=True)
    #: ``success`` or ``failure``.
    outcome: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(index=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    #: Client IP address of the request, if any.
    ip: Mapped[str | None] = mapped_column(String(64))
    #: Further detail; never secrets or unmasked identifiers.
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
