"""Grants: one authorization of a client by an account, the code
redemption and every token derived from it. Created by the protocol
(idp.oidc), revoked by sessions (idp.sessions), operators and the account
console; a revoked grant stops its refresh tokens at once and its access
tokens through the store (RFC 6749 §4.1.2, RFC 9700 §4.14.2)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from idp.audit.service import record
from idp.authorizations.models import Consent, Grant, RefreshToken
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import random_token
from idp.timeutil import utcnow

#: Store key prefix of a revoked grant; access tokens carrying its id as
#: ``gid`` fail from the moment it is written, in every process.
REVOKED_GRANT = "revoked:grant:"
#: Store key prefix of a client all of whose grants were revoked at once;
#: the value's ``at`` (ISO 8601, UTC) stops every grant made until then.
REVOKED_CLIENT_GRANTS = "revoked:client-grants:"


def _marker_ttl(rt: Runtime) -> int:
    """Seconds a revocation marker must live: until every access token it
    stops has expired anyway."""
    return rt.settings["tokens"]["access_token_ttl"] + rt.settings["tokens"]["clock_leeway"]


def create_grant(
    rt: Runtime,
    *,
    account_id: int,
    client_id: str,
    scope: str,
    claims: dict | None,
    sid: str | None,
    auth_time: int,
    acr: str | None,
    amr: list[str],
    nonce: str | None,
    ip: str | None = None,
) -> Grant:
    """Record a new authorization and its audit event (not committed: the
    authorization response, which carries the code, follows the caller's
    commit); its id goes into the code."""
    grant = Grant(
        id=random_token(18), account_id=account_id, client_id=client_id, scope=scope,
        claims=claims, sid=sid, auth_time=auth_time, acr=acr, amr=amr, nonce=nonce,
    )
    db.session.add(grant)
    record("authorization.granted", account_id=account_id, client_id=client_id, ip=ip,
           grant_id=grant.id, scope=scope)
    return grant


def revoke_grant(rt: Runtime, grant_id: str, reason: str, ip: str | None = None) -> None:
    """Revoke a grant: its refresh tokens and the access tokens naming it stop working.

    The store entry makes running access tokens fail at once in every process
    (written now, before the caller's commit: a revocation fails closed);
    the database column stops refresh once the caller commits.
    """
    now = utcnow()
    grant = db.session.get(Grant, grant_id)
    if grant is None:
        return
    if grant.revoked_at is None:
        grant.revoked_at = now
        db.session.execute(
            update(RefreshToken)
            .where(RefreshToken.grant_id == grant_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        record("grant.revoked", account_id=grant.account_id, client_id=grant.client_id,
               ip=ip, reason=reason, grant_id=grant_id)
    rt.store.put(REVOKED_GRANT + grant_id, {"reason": reason}, _marker_ttl(rt))


def revoke_client_grants(rt: Runtime, client_id: str, reason: str, *,
                         keep_consents: bool = False) -> tuple[int, int]:
    """End what a client was granted: every live grant is revoked with its
    refresh tokens (so the access tokens naming them stop at userinfo and
    introspection) and, when it is removed, every consent to it is deleted.
    One audit event for all, then flush; the caller commits. One store
    marker stops the access tokens of all of them at once, written before
    the flush so that a failure leaves them stopped (fail closed).

    :param keep_consents: keep the consents (the client stays registered
        and its users need not be asked again).
    :returns: ``(grants revoked, consents deleted)``.
    """
    now = utcnow()
    rt.store.put(REVOKED_CLIENT_GRANTS + client_id, {"at": now.isoformat()}, _marker_ttl(rt))
    live = select(Grant.id).where(Grant.client_id == client_id, Grant.revoked_at.is_(None))
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.grant_id.in_(live), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))
    grants = db.session.execute(
        update(Grant).where(Grant.client_id == client_id, Grant.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False)).rowcount
    consents = 0 if keep_consents else db.session.execute(
        delete(Consent).where(Consent.client_id == client_id)
        .execution_options(synchronize_session=False)).rowcount
    record("client.grants_revoked", client_id=client_id, reason=reason, grants=grants,
           consents=consents)
    db.session.flush()
    return grants, consents


def purge_expired(rt: Runtime) -> dict[str, int]:
    """Delete what can no longer be used: expired refresh tokens, and grants
    without refresh tokens whose codes and access tokens have all expired
    (unredeemed or access-token-only grants). Not committed.

    :returns: ``{"refresh_tokens": n, "grants": m}`` deleted.
    """
    now = utcnow()
    tokens = rt.settings["tokens"]
    horizon = now - timedelta(seconds=tokens["code_reuse_window"] + tokens["access_token_ttl"]
                              + tokens["clock_leeway"])
    expired = db.session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now))
    has_tokens = select(RefreshToken.id).where(RefreshToken.grant_id == Grant.id).exists()
    stale = db.session.execute(delete(Grant).where(Grant.created_at < horizon, ~has_tokens))
    return {"refresh_tokens": expired.rowcount, "grants": stale.rowcount}
