"""Account persistence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.timeutil import utcnow


class Account(db.Model):
    """One natural person's identity in the provider."""

    __tablename__ = "accounts"

    #: Internal key; never leaves the provider.
    id: Mapped[int] = mapped_column(primary_key=True)
    #: Public subject identifier (`sub`), opaque and never reused.
    subject: Mapped[str] = mapped_column(String(64), unique=True)
    #: Login name, stored case-folded so that lookups are case-insensitive.
    username: Mapped[str] = mapped_column(String(64), unique=True)
    #: Password hash in PHC/modular-crypt form (argon2id for new hashes).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    #: Display name (`name` claim).
    name: Mapped[str | None] = mapped_column(String(128))
    #: E-mail address (`email` claim) and whether it was proven.
    email: Mapped[str | None] = mapped_column(String(254))
    email_verified: Mapped[bool] = mapped_column(default=False)
    #: Mobile number in E.164 (`phone_number` claim), encrypted (idp.accounts.pii).
    phone_number_enc: Mapped[str | None] = mapped_column(Text)
    #: Blind index of the mobile number: lookup and one account per number.
    phone_number_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: Whether the mobile number was proven (SMS code).
    phone_number_verified: Mapped[bool] = mapped_column(default=False)
    #: Resident ID number (GB 11643), encrypted; never the `sub`.
    resident_id_enc: Mapped[str | None] = mapped_column(Text)
    #: Blind index of the resident ID number: lookup and one account per person.
    resident_id_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: "active" or "suspended"; a suspended account cannot log in or get tokens.
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: Creation and last profile change, UTC.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_active(self) -> bool:
        """True when the account may log in and receive tokens."""
        return self.status == "active"
