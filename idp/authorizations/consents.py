"""Remembered consent: the scopes an account agreed to release to a
client, shown and withdrawn in the account console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import select

from idp.audit.service import record
from idp.authorizations.models import Consent, Grant
from idp.authorizations.service import revoke_grant, stop_pending_codes
from idp.clients.models import Client
from idp.extensions import db
from idp.runtime import Runtime
from idp.timeutil import utcnow


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
    tokens stop working (:func:`revoke_grant`), as do the codes given to it
    and not redeemed yet (:func:`stop_pending_codes`). Audited, flushed.

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
    stop_pending_codes(rt, account_id, client_id)
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


