"""SSO sessions: the browser-level login at the provider, kept in the store,
below both the protocol (``idp.oidc``) and the login methods
(``idp.authn``).

The browser holds a random secret handle in its cookie; the store keeps the
session under a hash of that handle, so neither a store dump nor any token
reveals a usable cookie. The session's public id, ``sid``, is a separate
random value: it goes into ID tokens (OpenID Connect Front-/Back-Channel
Logout) and can never be replayed as a cookie.

Sessions end through two doors only: :func:`end` for one session (a logout,
a new login or a kiosk card in the same browser) and :func:`end_all` for
every session of an account (a changed credential, an operator's action).
:func:`end_all` moves the account's session generation on, so sessions it
cannot list (the store finds them by cookie only) die when next resolved
(:func:`resolve`). What an ended session revokes besides is one rule,
:func:`_revoke_grants`, chosen by each caller's ``revoke_grants``; and both
doors call :func:`_notify_relying_parties`, where single logout plugs in.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace

from sqlalchemy import or_, select

from idp.accounts.models import Account
from idp.accounts.service import get_account
from idp.accounts.snapshots import AccountSnapshot
from idp.authorizations.models import Grant
from idp.authorizations.service import revoke_grant, stop_pending_codes
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import random_token
from idp.store import Store
from idp.timeutil import epoch

_PREFIX = "sso:"


@dataclass
class SsoSession:
    """One SSO session.

    :ivar handle: the secret cookie value (never logged, never in a token).
    :ivar sid: public session id, the ``sid`` claim.
    :ivar account_id: internal account id.
    :ivar auth_time: Unix seconds of the last authentication in this session.
    :ivar amr: RFC 8176 authentication method references of that authentication
        (the ``acr`` is derived from them and the account's level when needed).
    :ivar expires_at: Unix seconds when the session ends.
    :ivar clients: client_ids that received tokens in this session (for logout).
    :ivar generation: the account's session generation when it started; the
        session ends when the account's moves on.
    :ivar reauth_at: Unix seconds of the last re-authentication in this
        session (password and second factor again, for binding or removing
        an authenticator or changing the password), or None.
    :ivar idle_ttl: seconds of inactivity after which the session ends, or 0
        for none: set for sessions on a public computer (the login page's
        checkbox, every kiosk), whose cookie also ends with the browser.
    :ivar seen_at: Unix seconds of the last use counted against ``idle_ttl``
        (refreshed by :func:`touch_session`).
    """

    handle: str
    sid: str
    account_id: int
    auth_time: int
    amr: list[str]
    expires_at: int
    clients: list[str] = field(default_factory=list)
    generation: int = 0
    reauth_at: int | None = None
    idle_ttl: int = 0
    seen_at: int = 0

    @property
    def public(self) -> bool:
        """True for a session on a public computer: its cookie lives only as
        long as the browser, and it ends after ``idle_ttl`` seconds unused."""
        return self.idle_ttl > 0

    def ends_at(self) -> int:
        """Unix seconds when the session ends unless used again: its absolute
        end, or earlier when the idle limit comes first."""
        if self.idle_ttl > 0:
            return min(self.expires_at, self.seen_at + self.idle_ttl)
        return self.expires_at


def _key(handle: str) -> str:
    return _PREFIX + hashlib.sha256(handle.encode()).hexdigest()


def save_session(store: Store, session: SsoSession, *, new: bool = False) -> bool:
    """Persist ``session`` for the rest of its lifetime (until
    :meth:`SsoSession.ends_at`: the store forgets an idle public session by
    itself). A change to an existing session is written only while it is
    still live: a request holding a copy of a session that was ended
    meanwhile (a logout, "sign out everywhere") must not bring it back.

    :param new: the session is being started (a login, a renewal under a
        new handle), not changed.
    :returns: whether the session is stored (False: it had ended).
    """
    remaining = session.ends_at() - epoch()
    if remaining <= 0:
        return False
    data = asdict(session)
    del data["handle"]
    if new:
        store.put(_key(session.handle), data, remaining)
        return True
    return store.replace(_key(session.handle), data, remaining)


def create_session(
    store: Store, account_id: int, amr: list[str], ttl: int, generation: int = 0,
    idle_ttl: int = 0,
) -> SsoSession:
    """Start a new SSO session lasting ``ttl`` seconds (a fresh handle at every
    login prevents session fixation) in the account's session ``generation``;
    with ``idle_ttl`` (seconds, a public computer's session) it also ends
    after that long unused (NIST SP 800-63B §7.2, inactivity timeout)."""
    now = epoch()
    session = SsoSession(
        handle=random_token(32), sid=random_token(16), account_id=account_id, auth_time=now,
        amr=amr, expires_at=now + ttl, generation=generation, idle_ttl=max(idle_ttl, 0),
        seen_at=now,
    )
    save_session(store, session, new=True)
    return session


def session_key(handle: str) -> str:
    """The store key of the session whose cookie value is ``handle``, for a
    caller that reads it together with other keys (:meth:`Store.get_many`)
    and hands the value to :func:`load_session`."""
    return _key(handle)


_UNREAD = object()


def load_session(store: Store, handle: str | None, stored: object = _UNREAD,
                 ) -> SsoSession | None:
    """The live session whose cookie value is ``handle``, or None.

    :param stored: the value under :func:`session_key` when the caller has
        read it already (None for no entry); else it is read here.
    """
    if not handle or len(handle) > 128:
        return None
    data = store.get(_key(handle)) if stored is _UNREAD else stored
    if data is None:
        return None
    # Sessions stored by the release before issue 3 also hold an "acr".
    data.pop("acr", None)
    session = SsoSession(handle=handle, **data)
    return session if session.ends_at() > epoch() else None


#: A public session's idle clock is restarted when at least this fraction of
#: its idle limit has passed since the last restart, so that an active user
#: costs one store write per tenth of the limit rather than one per request;
#: the session then ends between 90 % and 100 % of the limit after last use.
TOUCH_FRACTION = 10


def touch_session(store: Store, session: SsoSession) -> None:
    """Count a use of ``session`` against its idle limit (sliding expiry of a
    public session; nothing for a session without one). Writes the store at
    most once per ``idle_ttl / TOUCH_FRACTION`` seconds."""
    if session.idle_ttl <= 0:
        return
    now = epoch()
    if now - session.seen_at >= max(1, session.idle_ttl // TOUCH_FRACTION):
        session.seen_at = now
        save_session(store, session)


def add_client(store: Store, session: SsoSession, client_id: str) -> None:
    """Remember that ``client_id`` took part in ``session``."""
    if client_id not in session.clients:
        session.clients.append(client_id)
        save_session(store, session)


def resolve(rt: Runtime, handle: str | None, *, snapshot: bool = False,
            stored: object = _UNREAD,
            ) -> tuple[SsoSession | None, Account | AccountSnapshot | None]:
    """The live SSO session whose cookie value is ``handle`` and its account.

    A session of an older generation than its account's (ended by
    :func:`end_all`) counts as none. Resolving a session counts as a use of
    a public computer's session (its idle clock restarts, :func:`touch_session`).

    :param snapshot: give the account as its cached snapshot
        (:mod:`idp.accounts.snapshots`), for the protocol's single sign-on
        hop, which only reads it: no database query when it is current.
    :param stored: the session's stored value, as for :func:`load_session`.
    :returns: ``(session, account)``; ``(None, None)`` without a live session
        or for an ended generation; ``(session, None)`` when the account is
        gone or may not log in (suspended), so that the session can still
        be ended.
    """
    sso = load_session(rt.store, handle, stored)
    if sso is None:
        return None, None
    account = rt.accounts.get(sso.account_id) if snapshot else get_account(sso.account_id)
    if account is None or not account.is_active:
        return sso, None
    if sso.generation != account.session_generation:
        return None, None
    touch_session(rt.store, sso)
    return sso, account


def renew(rt: Runtime, session: SsoSession, **changes: object) -> SsoSession:
    """The login of ``session`` with ``changes`` (fields of
    :class:`SsoSession`) under a new secret handle; the old cookie value
    stops working (OWASP Session Management: a new session id at every
    change of privilege, so a cookie copied earlier does not inherit it).
    The ``sid``, methods, times and clients stay unless changed; the
    session goes on, so nothing is revoked and no one is notified.

    :returns: the renewed session, whose handle the browser's cookie must get.
    """
    renewed = replace(session, handle=random_token(32), **changes)
    save_session(rt.store, renewed, new=True)
    _forget(rt.store, session.handle)
    return renewed


def end(rt: Runtime, session: SsoSession, reason: str, *, revoke_grants: bool,
        ip: str | None = None) -> int:
    """End one SSO session: its cookie opens nothing any more, and the
    relying parties it served are notified (:func:`_notify_relying_parties`).
    Audits nothing itself (the caller records its own event, e.g. ``logout``).

    :param reason: why, a short code (``logout``, ``new_login``,
        ``kiosk_card``); the reason of revoked grants' ``grant.revoked`` events.
    :param revoke_grants: also revoke the grants issued in this session
        (:func:`_revoke_grants`). A logout today does not: the relying
        parties' refresh tokens outlive the browser session.
    :param ip: the client IP for the audit events of revoked grants.
    :returns: how many grants were revoked.
    """
    _forget(rt.store, session.handle)
    revoked = (_revoke_grants(rt, session.account_id, reason, ip, sid=session.sid)
               if revoke_grants else 0)
    _notify_relying_parties(rt, session.account_id, reason, ended=session)
    return revoked


@dataclass(frozen=True)
class EndedSessions:
    """What :func:`end_all` did.

    :ivar grants_revoked: how many grants were revoked.
    :ivar kept: the session that goes on in the account's new generation
        under a new cookie value (when one was kept), else None.
    """

    grants_revoked: int
    kept: SsoSession | None


def end_all(rt: Runtime, account: Account, reason: str, *, revoke_grants: bool,
            keep: SsoSession | None = None, ip: str | None = None) -> EndedSessions:
    """End every SSO session of ``account``, the one way an account's
    sessions end together: its session generation moves on (not committed:
    the caller commits), so each session of the old one counts as none
    when resolved (:func:`resolve`), as do e-mail links, device cookies
    and logins waiting for their second factor of the old generation; the
    relying parties are notified
    (:func:`_notify_relying_parties`). Audits nothing itself.

    :param reason: why, a short code (``password_reset``,
        ``account_suspended``, ...); the reason of revoked grants'
        ``grant.revoked`` events.
    :param revoke_grants: also revoke the account's grants
        (:func:`_revoke_grants`): when a credential was reset or changed,
        or an operator stopped the account (its tokens may rest on what
        changed); not when the change proves more than before (an
        authenticator app added) or changes only a channel (the phone number).
    :param keep: a session that goes on (the one that changed the password):
        it is renewed into the new generation (:func:`renew`) and its grants
        are kept.
    :param ip: the client IP for the audit events of revoked grants.
    """
    account.session_generation = (account.session_generation or 0) + 1
    kept = renew(rt, keep, generation=account.session_generation) if keep else None
    revoked = (_revoke_grants(rt, account.id, reason, ip, except_sid=keep.sid if keep else None,
                              generation=account.session_generation)
               if revoke_grants else 0)
    _notify_relying_parties(rt, account.id, reason, kept=kept)
    return EndedSessions(revoked, kept)


def _revoke_grants(rt: Runtime, account_id: int, reason: str, ip: str | None, *,
                   sid: str | None = None, except_sid: str | None = None,
                   generation: int | None = None) -> int:
    """The rule of what ended sessions revoke, when their caller asks: the
    grants issued in them, with their refresh tokens and access tokens.
    One ended session (``sid``) revokes the grants naming its ``sid``; all
    of an account's sessions revoke every live grant of the account (one
    issued outside any session included), except those issued in the
    session kept (``except_sid``).

    :param generation: the account's session generation after the
        sessions ended, when it moved on (:func:`end_all`).
    :returns: how many grants were revoked.
    """
    # Codes in flight have no row yet: a marker written before the list
    # below stops them (all of the account's: a code does not say which
    # session's grant it will be until it is redeemed, so a one-session
    # revocation stops the others' codes too, which only costs a retry).
    # With the account's new session generation, the marker stops exactly
    # the codes given before it, whatever the servers' clocks say.
    stop_pending_codes(rt, account_id, generation=generation)
    query = select(Grant.id).where(Grant.account_id == account_id, Grant.revoked_at.is_(None))
    if sid is not None:
        query = query.where(Grant.sid == sid)
    if except_sid is not None:
        query = query.where(or_(Grant.sid.is_(None), Grant.sid != except_sid))
    live = list(db.session.scalars(query))
    for grant_id in live:
        revoke_grant(rt, grant_id, reason, ip)
    return len(live)


def _notify_relying_parties(rt: Runtime, account_id: int, reason: str, *,
                            ended: SsoSession | None = None,
                            kept: SsoSession | None = None) -> None:
    """Tell the relying parties that sessions of ``account_id`` ended: the
    one session ``ended``, or without it every session of the account but
    ``kept``. Empty until single logout (OpenID Connect Back-Channel Logout
    1.0) is built (issue 11): each relying party in ``ended.clients`` then
    gets a logout token naming its ``sid`` (``idp.oidc.subjects.client_sid``).
    """


def _forget(store: Store, handle: str) -> None:
    store.delete(_key(handle))
