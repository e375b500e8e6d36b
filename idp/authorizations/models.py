"""Persistence of authorizations: grants, their refresh tokens, remembered consents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.timeutil import utcnow


class Grant(db.Model):
    """One authorization: a code redemption and every token derived from it.

    Revoking the grant revokes its refresh-token family and the access tokens
    that name it (RFC 6749 §4.1.2 code replay, RFC 9700 §4.14.2 refresh reuse).
    """

    __tablename__ = "grants"

    #: Random grant identifier, carried by access tokens as ``gid``.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    #: Granted scope, space separated.
    scope: Mapped[str] = mapped_column(String(512))
    #: The ``claims`` request parameter (OpenID Connect Core §5.5), or null.
    claims: Mapped[dict | None] = mapped_column(JSON)
    #: SSO session id (``sid``) the grant was issued under.
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    #: Time of the end-user authentication, Unix seconds (``auth_time``).
    auth_time: Mapped[int]
    acr: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    nonce: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when the grant is revoked; tokens naming it stop working.
    revoked_at: Mapped[datetime | None]


class RefreshToken(db.Model):
    """A refresh token, stored only as a keyed hash. Rotation marks the old one used."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: HMAC-SHA256 of the token value.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    #: Set when the token was exchanged for a new one; a second use is reuse.
    used_at: Mapped[datetime | None]
    #: Set by RFC 7009 revocation of this token.
    revoked_at: Mapped[datetime | None]


class Consent(db.Model):
    """Scopes an account has agreed to release to a client."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("account_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    #: Granted scopes, space separated, sorted.
    scope: Mapped[str] = mapped_column(String(512))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
