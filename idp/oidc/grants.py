"""Grant, refresh-token and consent rules: issuance, rotation with reuse
detection, family revocation, remembered consent and its withdrawal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import delete, select, update

from idp.audit.service import record
from idp.clients.models import Client
from idp.extensions import db
from idp.oidc.models import Consent, Grant, RefreshToken
from idp.oidc.tokens import REVOKED_GRANT
from idp.runtime import Runtime
from idp.security import keyed_hash, random_token
from idp.timeutil import utcnow

REFRESH_PURPOSE = "refresh_token"


class RefreshTokenReuseError(Exception):
    """A rotated refresh token was presented again; its family is now revoked."""


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
    ttl = rt.settings["tokens"]["access_token_ttl"] + rt.settings["tokens"]["clock_leeway"]
    rt.store.put(REVOKED_GRANT + grant_id, {"reason": reason}, ttl)


def revoke_client_grants(rt: Runtime, client_id: str, reason: str) -> tuple[int, int]:
    """End everything a client was granted, when it is removed: every live
    grant is revoked with its refresh tokens (so the access tokens naming
    them stop at userinfo and introspection) and every consent to it is
    deleted. One audit event for all, then flush; the caller commits.

    :returns: ``(grants revoked, consents deleted)``.
    """
    now = utcnow()
    live = select(Grant.id).where(Grant.client_id == client_id, Grant.revoked_at.is_(None))
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.grant_id.in_(live), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))
    grants = db.session.execute(
        update(Grant).where(Grant.client_id == client_id, Grant.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False)).rowcount
    consents = db.session.execute(
        delete(Consent).where(Consent.client_id == client_id)
        .execution_options(synchronize_session=False)).rowcount
    record("client.grants_revoked", client_id=client_id, reason=reason, grants=grants,
           consents=consents)
    db.session.flush()
    return grants, consents


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


def find_refresh_token(rt: Runtime, token: str) -> RefreshToken | None:
    """The stored refresh token matching ``token``, whatever its state."""
    if not isinstance(token, str) or len(token) > 256:
        return None
    return db.session.scalar(select(RefreshToken).where(
        RefreshToken.token_hash == keyed_hash(rt.token_hmac_key, token, REFRESH_PURPOSE)
    ))


def use_refresh_token(rt: Runtime, token: str, client_id: str,
                      ip: str | None = None) -> Grant | None:
    """Consume a refresh token for rotation (RFC 9700 §4.14.2).

    The token is marked used with a conditional UPDATE, so of two concurrent
    requests exactly one wins. Presenting a used token again revokes the whole
    grant (the family).

    :returns: the live grant, or None if the token is unknown, expired,
        revoked, of another client, or of a revoked grant.
    :raises RefreshTokenReuseError: when a rotated token is replayed.
    """
    row = find_refresh_token(rt, token)
    if row is None:
        return None
    grant = db.session.get(Grant, row.grant_id)
    if grant is None or grant.client_id != client_id:
        return None
    if row.used_at is not None:
        revoke_grant(rt, grant.id, "refresh_token_reuse", ip)
        raise RefreshTokenReuseError(grant.id)
    now = utcnow()
    if row.revoked_at is not None or grant.revoked_at is not None or row.expires_at <= now:
        return None
    won = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if won != 1:
        revoke_grant(rt, grant.id, "refresh_token_reuse", ip)
        raise RefreshTokenReuseError(grant.id)
    return grant


def has_consent(account_id: int, client_id: str, scope: str) -> bool:
    """True if the account already agreed to every scope in ``scope`` for this client."""
    row = db.session.scalar(select(Consent).where(
        Consent.account_id == account_id, Consent.client_id == client_id))
    return row is not None and set(scope_to_list(scope)) <= set(scope_to_list(row.scope))


def save_consent(account_id: int, client_id: str, scope: str, ip: str | None = None) -> None:
    """Remember consent to ``scope`` (added to what was granted before; not committed)."""
    row = db.session.scalar(select(Consent).where(
        Consent.account_id == account_id, Consent.client_id == client_id))
    if row is None:
        row = Consent(account_id=account_id, client_id=client_id, scope="")
        db.session.add(row)
    row.scope = " ".join(sorted(set(scope_to_list(row.scope)) | set(scope_to_list(scope))))
    row.granted_at = utcnow()
    record("consent.granted", account_id=account_id, client_id=client_id, ip=ip, scope=scope)


@dataclass(frozen=True)
class ConsentedClient:
    """A relying party the account consented to, as the account console shows it.

    :ivar client_id: the client's identifier.
    :ivar name: its registered name, or None if it is no longer registered.
    :ivar hosts: hosts (``host[:port]``, or ``scheme:`` for an app's own
        scheme) of its redirect URIs, in registration order, without repeats.
    :ivar scopes: the consented scopes, sorted.
    :ivar granted_at: when consent was last given, UTC.
    """

    client_id: str
    name: str | None
    hosts: tuple[str, ...]
    scopes: tuple[str, ...]
    granted_at: datetime


def _redirect_hosts(redirect_uris: list[str] | None) -> tuple[str, ...]:
    hosts: dict[str, None] = {}
    for uri in redirect_uris or []:
        parts = urlsplit(uri)
        # A private-use scheme reaches its app whatever "host" follows it
        # (RFC 8252 §7.1): the scheme is where the answers go.
        web = parts.scheme.lower() in ("http", "https")
        hosts[parts.netloc if web and parts.netloc else f"{parts.scheme}:"] = None
    return tuple(hosts)


def consents_of(account_id: int) -> list[ConsentedClient]:
    """The relying parties the account consented to, most recent first."""
    rows = db.session.execute(
        select(Consent, Client.name, Client.redirect_uris)
        .outerjoin(Client, Client.client_id == Consent.client_id)
        .where(Consent.account_id == account_id)
        .order_by(Consent.granted_at.desc(), Consent.id.desc()))
    return [ConsentedClient(consent.client_id, name, _redirect_hosts(uris),
                            tuple(scope_to_list(consent.scope) or ()), consent.granted_at)
            for consent, name, uris in rows]


def withdraw_consent(rt: Runtime, account_id: int, client_id: str,
                     ip: str | None = None) -> int | None:
    """Withdraw the account's consent to ``client_id``: the consent is
    deleted (the client's next request asks again) and every live grant of
    the account to that client is revoked, so its refresh tokens and access
    tokens stop working (:func:`revoke_grant`). Audited, committed.

    :returns: how many grants were revoked, or None if there was no consent.
    """
    def live() -> list[str]:
        return list(db.session.scalars(select(Grant.id).where(
            Grant.account_id == account_id, Grant.client_id == client_id,
            Grant.revoked_at.is_(None))))

    row = db.session.scalar(select(Consent).where(
        Consent.account_id == account_id, Consent.client_id == client_id))
    if row is None:
        return None
    # Grants first: if this stops half way, the consent is still listed and
    # withdrawing it again revokes the rest.
    revoked = live()
    for grant_id in revoked:
        revoke_grant(rt, grant_id, "consent_withdrawn", ip)
    scope = row.scope
    db.session.delete(row)
    record("consent.withdrawn", account_id=account_id, client_id=client_id, ip=ip,
           scope=scope, grants=len(revoked))
    db.session.flush()
    # A grant issued meanwhile, under the consent still stored, goes too.
    late = live()
    for grant_id in late:
        revoke_grant(rt, grant_id, "consent_withdrawn", ip)
    return len(revoked) + len(late)


def deny_consent(account_id: int, client_id: str, ip: str | None = None) -> None:
    """Audit that the account refused the client's request (not committed)."""
    record("consent.denied", "failure", account_id=account_id, client_id=client_id, ip=ip)


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
