"""Refresh tokens: issued per grant, stored as keyed hashes, rotated with
reuse detection (RFC 9700 §4.14.2): a second use revokes the family.

A rotation is the hottest write of the provider, so it is made of Core
statements compiled once (:data:`_FIND`, :data:`_INSERT`, the conditional
UPDATE of :func:`consume_refresh_token`) and reads plain rows, never ORM
objects: the refresh token endpoint spent more time in the ORM's identity
map and flush than in its own work (docs/performance.md). On the lane
before Flask (``revoke_on_reuse=False``, :func:`rotate_in_group`) they run
on each thread's kept DBAPI connection (:mod:`idp.db.direct`), without the
engine's checkout, pre-ping and execution context.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, insert, select, update

from idp.authorizations.models import Grant, RefreshToken
from idp.authorizations.service import revoke_grant
from idp.db.direct import Transaction, direct
from idp.db.group_commit import group_commit
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import keyed_hash, random_token
from idp.timeutil import utcnow

REFRESH_PURPOSE = "refresh_token"

_tokens = RefreshToken.__table__
_grants = Grant.__table__
#: A refresh token by its keyed hash, with its grant.
_FIND = (
    select(_tokens.c.id, _tokens.c.used_at, _tokens.c.revoked_at, _tokens.c.expires_at,
           _grants.c.id.label("grant_id"), _grants.c.account_id, _grants.c.client_id,
           _grants.c.scope, _grants.c.claims, _grants.c.sid, _grants.c.auth_time,
           _grants.c.acr, _grants.c.amr, _grants.c.revoked_at.label("grant_revoked_at"))
    .join_from(_tokens, _grants, _grants.c.id == _tokens.c.grant_id)
    .where(_tokens.c.token_hash == bindparam("token_hash"))
)
_INSERT = insert(_tokens)
#: The columns :func:`new_refresh_token` gives a row.
_ROW_KEYS = ("token_hash", "grant_id", "created_at", "expires_at")
#: Marks a token used while it, and its grant, are live.
_CONSUME = (
    update(_tokens)
    .where(_tokens.c.id == bindparam("row_id"), _tokens.c.used_at.is_(None),
           _tokens.c.revoked_at.is_(None), _tokens.c.expires_at > bindparam("now"),
           exists().where(_grants.c.id == _tokens.c.grant_id, _grants.c.revoked_at.is_(None)))
    .values(used_at=bindparam("used_now"))
)
_USED_AT = select(_tokens.c.used_at).where(_tokens.c.id == bindparam("row_id"))


class RefreshTokenReuseError(Exception):
    """A rotated refresh token was presented again (RFC 9700 §4.14.2).

    :ivar grant_id: the grant of the token's family.
    """

    def __init__(self, grant_id: str) -> None:
        super().__init__(grant_id)
        self.grant_id = grant_id


@dataclass(frozen=True)
class RefreshGrant:
    """What a rotation reads of the grant behind a refresh token: its
    immutable facts (:class:`~idp.authorizations.models.Grant`'s names).

    :ivar auth_time: the original authentication, seconds since the epoch.
    :ivar claims: the ``claims`` request of the authorization, or None.
    """

    id: str
    account_id: int
    client_id: str
    scope: str
    claims: dict | None
    sid: str | None
    auth_time: int
    acr: str | None
    amr: list


def new_refresh_token(rt: Runtime, grant_id: str) -> tuple[str, dict]:
    """A new refresh token of the grant ``grant_id`` and the row that
    stores it, not written yet.

    :returns: ``(clear token, row values)``; the row holds only the token's
        keyed hash.
    """
    token = random_token(32)
    now = utcnow()
    return token, {
        "token_hash": keyed_hash(rt.token_hmac_key, token, REFRESH_PURPOSE),
        "grant_id": grant_id,
        "created_at": now,
        "expires_at": now + timedelta(seconds=rt.settings["tokens"]["refresh_token_ttl"]),
    }


def issue_refresh_token(rt: Runtime, grant: Grant | RefreshGrant) -> str:
    """Store a refresh token for ``grant`` in the current transaction (not
    committed). A grant added to the session but not yet flushed is flushed
    first, so the token's row can name it.

    :returns: the clear token; only its keyed hash is stored.
    """
    token, row = new_refresh_token(rt, grant.id)
    db.session.flush()
    db.session.execute(_INSERT, row)
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
                              *, revoke_on_reuse: bool = True,
                              ) -> tuple[int, RefreshGrant] | None:
    """The refresh token ``token`` of ``client_id`` and its grant, when it
    may be rotated (RFC 9700 §4.14.2); nothing is written but the
    revocation of a replayed token's family. The rotation itself is
    :func:`consume_refresh_token`, which the caller runs last, once the new
    tokens are made: SQLite's write lock (and on PostgreSQL the row lock) is
    then held only for the writes and the commit.

    :param revoke_on_reuse: False for a caller that hands a replay on to one
        that revokes (:mod:`idp.oidc.lanes`): then nothing at all is
        written, and the token is read on a connection of its own outside
        any transaction.
    :returns: ``(token row id, grant)``, or None if the token is unknown,
        expired, revoked, of another client, or of a revoked grant.
    :raises RefreshTokenReuseError: when a rotated token is replayed (its
        grant is revoked, in the caller's transaction, with ``revoke_on_reuse``).
    """
    stored = _stored_hash(rt, token)
    if stored is None:
        return None
    if revoke_on_reuse:
        row = db.session.execute(_FIND, {"token_hash": stored}).first()
    else:
        # Nothing to write: read outside a transaction (on PostgreSQL no
        # BEGIN and COMMIT round trips around the one SELECT).
        kept = direct(db.engine)
        row = kept.first(kept.prepare(_FIND), {"token_hash": stored})
    if row is None or row.client_id != client_id:
        return None
    if row.used_at is not None:
        if revoke_on_reuse:
            revoke_grant(rt, row.grant_id, "refresh_token_reuse", ip)
        raise RefreshTokenReuseError(row.grant_id)
    if row.revoked_at is not None or row.grant_revoked_at is not None or row.expires_at <= utcnow():
        return None
    return row.id, RefreshGrant(row.grant_id, row.account_id, row.client_id, row.scope,
                                row.claims, row.sid, row.auth_time, row.acr, row.amr or [])


def consume_refresh_token(rt: Runtime, row_id: int, grant_id: str, ip: str | None = None,
                          *, revoke_on_reuse: bool = True) -> bool:
    """Mark the refresh token ``row_id`` used, with a conditional UPDATE, so
    that of two concurrent rotations exactly one wins (RFC 9700 §4.14.2),
    and only while the token and its grant are still live: a revocation
    (logout, suspension, the client's removal) that landed after
    :func:`find_usable_refresh_token` read them stops the rotation here.

    :param revoke_on_reuse: as for :func:`find_usable_refresh_token`.
    :returns: True when this request rotated the token; False when it was
        revoked, expired or its grant revoked in between.
    :raises RefreshTokenReuseError: another rotation won: the token was used
        in between, and its family (``grant_id``) is revoked with
        ``revoke_on_reuse``.
    """
    now = utcnow()
    if db.session.execute(_CONSUME, {"row_id": row_id, "now": now, "used_now": now}).rowcount == 1:
        return True
    used_at = db.session.execute(_USED_AT, {"row_id": row_id}).scalar()
    return _lost(rt, used_at, grant_id, ip, revoke_on_reuse)


def rotate_in_group(rt: Runtime, row_id: int, grant_id: str, new_row: dict) -> bool:
    """:func:`consume_refresh_token` and the INSERT of its successor
    ``new_row`` (:func:`new_refresh_token`), committed in the process's
    next group commit (:mod:`idp.db.group_commit`) instead of the caller's
    transaction, which must not have written: concurrent rotations then
    share one transaction, one hold of SQLite's write lock and one COMMIT.
    A replay found here is not revoked (the caller hands it on, as with
    ``revoke_on_reuse=False``).

    :returns: True once the rotation is committed; False when the token was
        revoked, expired or its grant revoked in between (nothing written).
    :raises RefreshTokenReuseError: another rotation won.
    :raises Exception: the DBAPI's error: the batch failed (rolled back).
    """
    now = utcnow()
    consume = {"row_id": row_id, "now": now, "used_now": now}
    kept = direct(db.engine)
    consume_statement, insert_statement = kept.prepare(_CONSUME), kept.prepare(_INSERT, _ROW_KEYS)

    def rotate(transaction: Transaction) -> bool:
        if transaction.execute(consume_statement, consume) != 1:
            return False
        transaction.execute(insert_statement, new_row)
        return True

    if group_commit(db.engine).run(rotate, key=row_id):
        return True
    row = kept.first(kept.prepare(_USED_AT), {"row_id": row_id})
    return _lost(rt, row.used_at if row is not None else None, grant_id, None, False)


def _lost(rt: Runtime, used_at: datetime | None, grant_id: str, ip: str | None,
          revoke_on_reuse: bool) -> bool:
    """After a rotation's UPDATE matched nothing, given the token's
    ``used_at`` read then: a replay if the token was used meanwhile, else
    False (revoked or expired)."""
    if used_at is not None:
        if revoke_on_reuse:
            revoke_grant(rt, grant_id, "refresh_token_reuse", ip)
        raise RefreshTokenReuseError(grant_id)
    return False
