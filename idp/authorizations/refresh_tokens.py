"""Refresh tokens: issued per grant, stored as keyed hashes, rotated with
reuse detection (RFC 9700 §4.14.2): a second use revokes the family."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import exists, select, update

from idp.authorizations.models import Grant, RefreshToken
from idp.authorizations.service import revoke_grant
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import keyed_hash, random_token
from idp.timeutil import utcnow

REFRESH_PURPOSE = "refresh_token"


class RefreshTokenReuseError(Exception):
    """A rotated refresh token was presented again; its family is now revoked."""


def issue_refresh_token(rt: Runtime, grant: Grant) -> str:
    """Create a refresh token for ``grant`` (added to the session, not committed).

    :returns: the clear token; only its keyed hash is stored.
    """
    token = random_token(32)
    db.session.add(RefreshToken(
        token_hash=keyed_hash(rt.token_hmac_key, token, REFRESH_PURPOSE),
        grant_id=grant.id,
        expires_at=utcnow() + timedelta(seconds=rt.settings["tokens"]["refresh_token_ttl"]),
    ))
    return token


def _stored_hash(rt: Runtime, token: object) -> str | None:
    """The keyed hash a refresh token is stored under, or None for a value
    that cannot be one (not text, or longer than any we issue)."""
    if not isinstance(token, str) or len(token) > 256:
        return None
    return keyed_hash(rt.token_hmac_key, token, REFRESH_PURPOSE)


def find_refresh_token(rt: Runtime, token: str) -> RefreshToken | None:
    """The stored refresh token matching ``token``, whatever its state."""
    stored = _stored_hash(rt, token)
    if stored is None:
        return None
    return db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == stored))


def find_usable_refresh_token(rt: Runtime, token: str, client_id: str, ip: str | None = None,
                              *, check: Callable[[Grant], None] | None = None,
                              ) -> tuple[int, Grant] | None:
    """The refresh token ``token`` of ``client_id`` and its grant, when it
    may be rotated (RFC 9700 §4.14.2); nothing is written but the
    revocation of a replayed token's family. The rotation itself is
    :func:`consume_refresh_token`, which the caller runs last, once the new
    tokens are made: SQLite's write lock (and on PostgreSQL the row lock) is
    then held only for the writes and the commit.

    :param check: called with the live grant; what it raises refuses the
        request and leaves the token unused, so a client that corrects its
        request (a narrower scope) is not taken for a thief replaying it.
    :returns: ``(token row id, grant)``, or None if the token is unknown,
        expired, revoked, of another client, or of a revoked grant.
    :raises RefreshTokenReuseError: when a rotated token is replayed (its
        grant is revoked, in the caller's transaction).
    """
    stored = _stored_hash(rt, token)
    if stored is None:
        return None
    # The token and its grant in one statement.
    found = db.session.execute(
        select(RefreshToken, Grant).join(Grant, Grant.id == RefreshToken.grant_id)
        .where(RefreshToken.token_hash == stored)).first()
    if found is None:
        return None
    row, grant = found
    if grant.client_id != client_id:
        return None
    if row.used_at is not None:
        revoke_grant(rt, grant.id, "refresh_token_reuse", ip)
        raise RefreshTokenReuseError(grant.id)
    if row.revoked_at is not None or grant.revoked_at is not None or row.expires_at <= utcnow():
        return None
    if check is not None:
        check(grant)
    return row.id, grant


def consume_refresh_token(rt: Runtime, row_id: int, grant: Grant, ip: str | None = None,
                          ) -> bool:
    """Mark the refresh token ``row_id`` used, with a conditional UPDATE, so
    that of two concurrent rotations exactly one wins (RFC 9700 §4.14.2),
    and only while the token and its grant are still live: a revocation
    (logout, suspension, the client's removal) that landed after
    :func:`find_usable_refresh_token` read them stops the rotation here.

    :returns: True when this request rotated the token; False when it was
        revoked, expired or its grant revoked in between.
    :raises RefreshTokenReuseError: another rotation won: the token was used
        in between, and its family (``grant``) is revoked.
    """
    # On the table, not the mapped class: the row is decided by the
    # database, and the ORM's bulk machinery would only add cost.
    table = RefreshToken.__table__
    grants = Grant.__table__
    now = utcnow()
    live_grant = exists().where(grants.c.id == table.c.grant_id, grants.c.revoked_at.is_(None))
    won = db.session.execute(
        update(table).where(table.c.id == row_id, table.c.used_at.is_(None),
                            table.c.revoked_at.is_(None), table.c.expires_at > now, live_grant)
        .values(used_at=now)
    ).rowcount
    if won == 1:
        return True
    used_at = db.session.execute(select(table.c.used_at).where(table.c.id == row_id)).scalar()
    if used_at is not None:
        revoke_grant(rt, grant.id, "refresh_token_reuse", ip)
        raise RefreshTokenReuseError(grant.id)
    return False
