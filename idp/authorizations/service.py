"""Grants: one authorization of a client by an account, the code
redemption and every token derived from it. Created by the protocol
(idp.oidc), revoked by sessions (idp.sessions), operators and the account
console; a revoked grant stops its refresh tokens at once and its access
tokens through the store (RFC 6749 §4.1.2, RFC 9700 §4.14.2)."""

from __future__ import annotations

from datetime import datetime, timedelta

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
#: the value's ``at`` (ISO 8601, UTC) stops every grant made until then,
#: authorization codes not redeemed yet included.
REVOKED_CLIENT_GRANTS = "revoked:client-grants:"
#: Store key prefix of a withdrawn consent (:func:`consent_marker_key`):
#: its ``at`` stops the codes given to the client before it, whose grants
#: are not written until they are redeemed.
REVOKED_CONSENT = "revoked:consent:"
#: Store key prefix of an account all of whose grants were revoked (its
#: sessions ended with their grants): it stops the codes given before it and
#: not redeemed yet, by the session ``generation`` it names (or by its
#: ``at`` when it names none).
REVOKED_ACCOUNT_GRANTS = "revoked:account-grants:"
#: Seconds by which the clocks of the provider's own servers may differ
#: (they run NTP): a revocation marker written on one stops what another
#: stamped up to this long after it, rather than let it through.
SERVER_CLOCK_SKEW = 2


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
    grant_id: str | None = None,
    created_at: datetime | None = None,
) -> Grant:
    """Record a grant (added to the session, not flushed or committed).
    The authorization itself is audited when it is given
    (``authorization.granted``, by the protocol); the row is written when
    its code is redeemed.

    :param grant_id: the id the authorization gave it (carried by its
        code); a new random one when None.
    :param created_at: when the authorization was given, UTC (so that the
        revocations between it and the redemption cover the grant); now
        when None.
    """
    grant = Grant(
        id=grant_id or random_token(18), account_id=account_id, client_id=client_id,
        scope=scope, claims=claims, sid=sid, auth_time=auth_time, acr=acr, amr=amr,
        nonce=nonce, created_at=created_at or utcnow(),
    )
    db.session.add(grant)
    return grant


def revoked_since(marker: dict | None, moment: datetime) -> bool:
    """Whether a revocation marker (:data:`REVOKED_CLIENT_GRANTS`,
    :data:`REVOKED_CONSENT`, :data:`REVOKED_ACCOUNT_GRANTS`) covers what was
    granted at ``moment`` (UTC): its ``at`` is the same instant or later, or
    earlier by no more than :data:`SERVER_CLOCK_SKEW` (the two times may
    come from two servers' clocks). An unreadable marker covers everything
    (fail closed)."""
    if marker is None:
        return False
    try:
        at = datetime.fromisoformat(marker["at"])
    except (KeyError, TypeError, ValueError):
        return True
    return moment <= at + timedelta(seconds=SERVER_CLOCK_SKEW)


def consent_marker_key(account_id: int, client_id: str) -> str:
    """The store key of the :data:`REVOKED_CONSENT` marker of ``account_id``'s
    consent to ``client_id``."""
    return f"{REVOKED_CONSENT}{account_id}:{client_id}"


def _code_marker_ttl(rt: Runtime) -> int:
    """Seconds a marker that stops codes in flight must live: as long as a
    code, and the redemption's check after its commit."""
    tokens = rt.settings["tokens"]
    return tokens["authorization_code_ttl"] + tokens["clock_leeway"]


def stop_pending_codes(rt: Runtime, account_id: int, client_id: str | None = None, *,
                       generation: int | None = None) -> None:
    """Stop the authorization codes given until now and not redeemed yet
    (their grants have no row to revoke): to ``client_id`` for
    ``account_id`` (a :data:`REVOKED_CONSENT` marker), or to any client
    (a :data:`REVOKED_ACCOUNT_GRANTS` marker). Written before the caller
    lists the grants it revokes, so a redemption that commits after that
    list finds the marker (:func:`revoked_in_flight`).

    :param generation: for the account's marker, its session generation
        from now on: the codes given under an older one are stopped, those
        given under it are not, so no clocks are compared.
    """
    marker: dict = {"at": utcnow().isoformat()}
    if client_id is not None:
        key = consent_marker_key(account_id, client_id)
    else:
        key = f"{REVOKED_ACCOUNT_GRANTS}{account_id}"
        if generation is not None:
            marker["generation"] = generation
    rt.store.put(key, marker, _code_marker_ttl(rt))


def revoked_in_flight(rt: Runtime, *, grant_id: str, account_id: int, client_id: str,
                      granted_at: datetime, generation: int, replayed: bool) -> bool:
    """Whether a grant whose code was given at ``granted_at`` (UTC), under
    the account's session ``generation``, was revoked before its row
    existed: its client's grants, the account's consent to the client, or
    all of the account's grants were revoked since, or (with ``replayed``)
    its code was replayed. One store round trip.

    :param replayed: count the grant's own mark (a replay of its code); the
        redemption leaves it out before its commit (the first redemption of a
        replayed code still answers, case O-9) and counts it after.
    :raises StoreError: the markers cannot be read.
    """
    markers = rt.store.get_many([
        REVOKED_CLIENT_GRANTS + client_id, consent_marker_key(account_id, client_id),
        f"{REVOKED_ACCOUNT_GRANTS}{account_id}", REVOKED_GRANT + grant_id])
    account = markers[2]
    if isinstance(account, dict) and isinstance(account.get("generation"), int):
        by_account = generation < account["generation"]
    else:
        by_account = revoked_since(account, granted_at)
    return (by_account or revoked_since(markers[0], granted_at)
            or revoked_since(markers[1], granted_at) or (replayed and markers[3] is not None))


def revoke_grant(rt: Runtime, grant_id: str, reason: str, ip: str | None = None) -> None:
    """Revoke a grant: its refresh tokens and the access tokens naming it stop working.

    The store entry makes running access tokens fail at once in every process
    (written now, before the caller's commit: a revocation fails closed);
    the database column stops refresh once the caller commits. The entry is
    written for a grant with no row too: one whose code is being redeemed
    right now (a replay of the code, RFC 6749 §10.5), which the redemption
    finds once it has committed its row (``idp.oidc.flows.authorization_code``).
    """
    now = utcnow()
    rt.store.put(REVOKED_GRANT + grant_id, {"reason": reason}, _marker_ttl(rt))
    # Conditional, so of several requests revoking at once (the losers of a
    # refresh race) one revokes and audits; the others find it done.
    revoked = db.session.execute(
        update(Grant).where(Grant.id == grant_id, Grant.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount
    if revoked:
        grant = db.session.get(Grant, grant_id)
        db.session.execute(
            update(RefreshToken)
            .where(RefreshToken.grant_id == grant_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        record("grant.revoked", account_id=grant.account_id, client_id=grant.client_id,
               ip=ip, reason=reason, grant_id=grant_id)


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
