"""Persistence of the protocol's own state: signing keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.timeutil import utcnow


class SigningKey(db.Model):
    """A JWS signing key. The private JWK is stored AES-256-GCM encrypted."""

    __tablename__ = "signing_keys"

    #: Key id (``kid``), the RFC 7638 thumbprint.
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: JWS algorithm this key is used with (RFC 7518 §3.1).
    alg: Mapped[str] = mapped_column(String(16), index=True)
    #: Public JWK as published in the JWKS.
    public_jwk: Mapped[dict] = mapped_column(JSON)
    #: Encrypted private JWK (see idp.security.encrypt), associated data = kid.
    private_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when a newer key of the same algorithm took over signing.
    retired_at: Mapped[datetime | None]
