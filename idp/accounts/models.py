"""Account persistence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
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
    #: Social security card number, encrypted (idp.accounts.pii); stored once
    #: the card was verified with the social-security registry.
    card_number_enc: Mapped[str | None] = mapped_column(Text)
    #: Blind index of the card number: login by card number, one account per card.
    card_number_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: The name as the population registry matched it with the resident ID
    #: number (``verified_claims``); null until a registry match.
    verified_name: Mapped[str | None] = mapped_column(String(128))
    #: "active" or "suspended"; a suspended account cannot log in or get tokens.
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: Set by an operator: no tokens are issued until the identity is
    #: verified again against the population registry.
    reverification_required: Mapped[bool] = mapped_column(default=False)
    #: Operators of the provider; they must use a second factor (TOTP).
    is_admin: Mapped[bool] = mapped_column(default=False)
    #: Generation of the account's SSO sessions: each session records the one
    #: it started in, and raising it ends them all (``idp.sessions.end_all``:
    #: password reset, suspension, forced re-verification).
    session_generation: Mapped[int] = mapped_column(default=0)
    #: Why an operator should look at the account (``identity_released``: an
    #: ID number it had verified by knowledge only was proven by its holder's
    #: card, face, carrier or in person), and since when, UTC; null when
    #: nothing is pending.
    review_reason: Mapped[str | None] = mapped_column(String(64))
    review_flagged_at: Mapped[datetime | None]
    #: When the password was last set by an SMS code alone (a reset), UTC;
    #: null once it is changed after a re-authentication or an operator
    #: reset the second factor at a counter. For
    #: ``session.reauth_hold_after_sms_reset`` seconds after it, the password
    #: and an SMS code (both from one phone) do not re-authenticate, are no
    #: two factors at a step-up, and the carrier check is refused
    #: (``idp.accounts.recovery.sms_reset_hold_until``).
    password_reset_by_sms_at: Mapped[datetime | None]
    #: Set when the password the account logged in with fails today's
    #: policy (a legacy password, case M-PW-3): no SSO session is used for
    #: a client until it is changed (idp.accounts.legacy).
    password_change_required: Mapped[bool] = mapped_column(default=False)
    #: Creation and last profile change, UTC.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_active(self) -> bool:
        """True when the account may log in."""
        return self.status == "active"

    @property
    def may_receive_tokens(self) -> bool:
        """True when tokens may be issued to or used for the account: it is
        active and no operator asked for its identity to be verified again."""
        return self.is_active and not self.reverification_required

    @property
    def has_password(self) -> bool:
        """True when the account has a password (an account made from a
        card read or an SMS code may have none)."""
        return bool(self.password_hash)


class VerificationEvidence(db.Model):
    """One identity verification of an account (OpenID Connect for Identity
    Assurance 1.0 ``evidence``): what was checked, by which registry, when,
    the answer and the registry's reference. Failed checks are kept too."""

    __tablename__ = "verification_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    #: ``population_registry``, ``face_comparison``, ``social_security_card``,
    #: ``carrier_three_element`` or ``in_person`` (idp.accounts.verification.METHODS).
    method: Mapped[str] = mapped_column(String(32))
    #: The registry that answered: ``population``, ``face``, ``social_security``,
    #: ``carrier`` or ``counter``.
    source: Mapped[str] = mapped_column(String(32))
    #: The registry's answer (``match``, ``mismatch``, ``active``, ``pass``...).
    result: Mapped[str] = mapped_column(String(32))
    #: Assurance level the evidence supports; 0 for a failed check.
    level: Mapped[int] = mapped_column(default=0)
    #: The registry's (or counter's) reference of the check.
    reference: Mapped[str] = mapped_column(String(64))
    #: When the check was made, UTC.
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the evidence stops counting (re-verification is then needed), UTC.
    expires_at: Mapped[datetime | None]
    #: Set when the evidence no longer counts before its expiry, with why
    #: (``password_reset_by_sms``, ``reverification_required``, ``superseded``).
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    #: Who made an in-person check (operator), else null.
    actor: Mapped[str | None] = mapped_column(String(64))


class TotpCredential(db.Model):
    """A TOTP second factor (RFC 6238) of an account; at most one each."""

    __tablename__ = "totp_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            unique=True)
    #: The base32 shared secret, encrypted (idp.accounts.pii, kind ``totp``).
    secret_enc: Mapped[str] = mapped_column(Text)
    #: Set when the user proved the authenticator works; unconfirmed
    #: credentials are never asked for at login.
    confirmed_at: Mapped[datetime | None]
    #: Last accepted time step: a code is accepted once (RFC 6238 §5.2).
    last_step: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(db.Model):
    """A one-time recovery code for when the TOTP device is lost; stored
    only as a keyed hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    #: HMAC-SHA256 of the code (idp.security.keyed_hash).
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when the code was used; a used code never works again.
    used_at: Mapped[datetime | None]


class LegalEntity(db.Model):
    """An enterprise or institution, keyed by its Unified Social Credit Code
    (GB 32100), as the legal-entity registry confirmed it."""

    __tablename__ = "legal_entities"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The 18-character credit code (public information, stored in clear).
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    #: The registered name, as the registry matched it.
    name: Mapped[str] = mapped_column(String(200))
    #: Last registry match, UTC, its reference, and when it stops counting
    #: (level 2 while live; ``assurance.validity_days.legal_entity_registry``).
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
    reference: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(db.Model):
    """An account authorised to act for a legal entity: today its legal
    representative, as the legal-entity registry confirmed with the
    account's verified name and ID number."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("entity_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("legal_entities.id", ondelete="CASCADE"),
                                           index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    #: ``legal_representative``.
    role: Mapped[str] = mapped_column(String(32))
    #: When the registry confirmed the role, and its reference.
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
    reference: Mapped[str] = mapped_column(String(64))
    #: Set when the representation ended with the evidence it rested on (the
    #: account's identity verification revoked or released), with why; an
    #: ended agent acts for nobody.
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(String(64))


class IdentityLink(db.Model):
    """An identifier an account can hold many of, each scoped by its
    issuer: a legacy user id of a department, a certificate of a CA, a
    subject at an upstream identity provider (idp.accounts.links). Phone,
    resident ID and card number are one per person and stay columns of
    :class:`Account`."""

    __tablename__ = "identity_links"
    __table_args__ = (UniqueConstraint("kind", "issuer", "value_index",
                                       name="uq_identity_links_kind_issuer_value_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    #: ``legacy``, ``alias``, ``certificate`` or ``federation``
    #: (idp.accounts.links.KINDS).
    kind: Mapped[str] = mapped_column(String(16))
    #: Who issued the value: a department code, a CA, an upstream issuer URL.
    issuer: Mapped[str] = mapped_column(String(255))
    #: The value (legacy user id, certificate serial, upstream ``sub``),
    #: encrypted and bound to its kind and issuer (idp.accounts.pii).
    value_enc: Mapped[str] = mapped_column(Text)
    #: Blind index of the value under its kind and issuer: lookup and one
    #: account per value.
    value_index: Mapped[str] = mapped_column(String(64))
    #: When the link was made, and when a login last went through it, UTC.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class LegacyCredential(db.Model):
    """A department's password hash, kept as its old system stored it until
    the account's first login (idp.accounts.legacy): then the password used
    is re-hashed with argon2id and every legacy credential of the account is
    deleted. Each legacy link keeps its own (u1001 and u1001_admin of one
    department may have two passwords)."""

    __tablename__ = "legacy_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    #: The legacy link (department, legacy id) the hash came with.
    link_id: Mapped[int] = mapped_column(ForeignKey("identity_links.id", ondelete="CASCADE"),
                                         unique=True)
    #: The department's code, as the link's issuer.
    department: Mapped[str] = mapped_column(String(32))
    #: The scheme as the mapping wrote it (``md5(md5(password) + salt)``,
    #: ``bcrypt``...; migration.hashes.scheme_for).
    scheme: Mapped[str] = mapped_column(String(1000))
    #: JSON of the stored hash, salt and exact legacy login name, encrypted
    #: (idp.accounts.pii, kind ``legacy_credential:<department>``).
    secret_enc: Mapped[str] = mapped_column(Text)
    #: The environment variable holding the department's pepper, if its
    #: scheme reads one; the pepper itself is never stored.
    pepper_env: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
