"""SSO sessions: the browser-level login at the provider, kept in the store,
below both the protocol (``idp.oidc``) and the login methods
(``idp.authn``).

The browser holds a random secret handle in its cookie; the store keeps the
session under a hash of that handle, so neither a store dump nor any token
reveals a usable cookie. The session's public id, ``sid``, is a separate
random value: it goes into ID tokens (OpenID Connect Front-/Back-Channel
Logout) and can never be replayed as a cookie.

Each account's live sessions are listed in a store map (sid -> where the
session is kept, when and from which browser it started), written by each
login without losing another's (:meth:`Store.map_put`): the account
console lists them, and "log out everywhere" reaches each one.

Sessions end through two doors only: :func:`end` for one session (a logout,
a new login or a kiosk card in the same browser, its idle or absolute
limit) and :func:`end_all` for every session of an account (a changed
credential, an operator's action, "log out everywhere"). :func:`end_all`
also moves the account's session generation on, so a session it could not
list (one started before the list existed) dies when next resolved
(:func:`resolve`). What an ended session revokes besides is one rule,
:func:`_revoke_grants`, chosen by each caller's ``revoke_grants``; and both
doors tell the relying parties of each ended session
(:func:`idp.single_logout.announce`: OpenID Connect Back-Channel Logout,
CAS single logout).

A session that reaches its idle or absolute limit is forgotten by the
store's expiry, which tells no one; so each session also has an item in the
expiry queue (:data:`EXPIRY_QUEUE`), due when the session would end, and
the single-logout worker ends it through :func:`end` then
(:func:`end_expired`). Its record stays readable for
:data:`ENDED_KEPT_SECONDS` past its end for that, but never counts as live.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace

from sqlalchemy import or_, select

from idp import relying_parties, single_logout
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
_ACCOUNT_PREFIX = "sso_account:"

#: The store queue of sessions' ends (item: the sid).
EXPIRY_QUEUE = "sso_expiries"
#: Seconds an ended session's record stays in the store past its end, so
#: that the single-logout worker can still tell its relying parties when it
#: runs late (a restart, an outage).
ENDED_KEPT_SECONDS = 3600
#: Longest user agent kept for the account console's list, characters.
USER_AGENT_CHARS = 300


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
    :ivar relying_parties: the clients that received tokens in this
        session (dicts with ``client_id`` and ``at``, Unix seconds): a copy
        of what :mod:`idp.relying_parties` holds, which is the list single
        logout reads.
    :ivar generation: the account's session generation when it started; the
        session ends when the account's moves on.
    :ivar reauth_at: Unix seconds of the last re-authentication in this
        session (password and second factor again, for binding or removing
        an authenticator or changing the password), or None.
    :ivar idle_ttl: seconds of inactivity after which the session ends, or 0
        for none (``session.idle_ttl``, or ``session.public_idle_ttl`` on a
        public computer).
    :ivar seen_at: Unix seconds of the last use counted against ``idle_ttl``
        (refreshed by :func:`touch_session`).
    :ivar public: a session on a public computer (the login page's
        checkbox, every kiosk): its cookie ends with the browser.
    :ivar started_at: Unix seconds of the login that started it.
    :ivar user_agent: the browser's ``User-Agent`` at that login (cut to
        :data:`USER_AGENT_CHARS`), for the account console.
    :ivar ip: the client IP of that login, for the account console.
    """

    handle: str
    sid: str
    account_id: int
    auth_time: int
    amr: list[str]
    expires_at: int
    relying_parties: list[dict] = field(default_factory=list)
    generation: int = 0
    reauth_at: int | None = None
    idle_ttl: int = 0
    seen_at: int = 0
    public: bool = False
    started_at: int = 0
    user_agent: str = ""
    ip: str = ""

    @property
    def client_ids(self) -> list[str]:
        """The client_ids of the relying parties, in the order they joined."""
        return [rp["client_id"] for rp in self.relying_parties]

    def ends_at(self) -> int:
        """Unix seconds when the session ends unless used again: its absolute
        end, or earlier when the idle limit comes first."""
        if self.idle_ttl > 0:
            return min(self.expires_at, self.seen_at + self.idle_ttl)
        return self.expires_at


def _key(handle: str) -> str:
    return _PREFIX + hashlib.sha256(handle.encode()).hexdigest()


def _account_key(account_id: int) -> str:
    return f"{_ACCOUNT_PREFIX}{account_id}"


def save_session(store: Store, session: SsoSession, *, new: bool = False,
                 moved: bool = False) -> bool:
    """Persist ``session`` for the rest of its lifetime (until
    :meth:`SsoSession.ends_at`, then :data:`ENDED_KEPT_SECONDS` more as an
    ended record). A change to an existing session is written only while it
    is still live: a request holding a copy of a session that was ended
    meanwhile (a logout, "sign out everywhere") must not bring it back.

    :param new: the session is being started (a login, a renewal under a
        new handle), not changed: it joins the account's list.
    :param moved: its end moved (its idle clock restarted).
    :returns: whether the session is stored (False: it had ended).
    """
    now = epoch()
    remaining = session.ends_at() - now
    if remaining <= 0:
        return False
    data = asdict(session)
    del data["handle"]
    key = _key(session.handle)
    if new:
        store.put(key, data, remaining + ENDED_KEPT_SECONDS)
        # Listed for as long as the session may live, however often used.
        store.map_put(_account_key(session.account_id), session.sid, {"key": key},
                      max(session.expires_at - now, remaining) + ENDED_KEPT_SECONDS)
    elif not store.replace(key, data, remaining + ENDED_KEPT_SECONDS):
        return False
    if new or moved:
        store.queue_push(EXPIRY_QUEUE, session.sid, {"key": key}, remaining,
                         remaining + ENDED_KEPT_SECONDS)
    return True


def create_session(
    store: Store, account_id: int, amr: list[str], ttl: int, generation: int = 0,
    idle_ttl: int = 0, *, public: bool = False, user_agent: str = "", ip: str | None = None,
) -> SsoSession:
    """Start a new SSO session lasting ``ttl`` seconds (a fresh handle at every
    login prevents session fixation) in the account's session ``generation``;
    with ``idle_ttl`` (seconds) it also ends after that long unused (NIST SP
    800-63B §7.2, inactivity timeout).

    :param public: a public computer's session (its cookie ends with the browser).
    :param user_agent: the browser's ``User-Agent``, kept for the account console.
    :param ip: the client IP, kept for the account console.
    """
    now = epoch()
    session = SsoSession(
        handle=random_token(32), sid=random_token(16), account_id=account_id, auth_time=now,
        amr=amr, expires_at=now + ttl, generation=generation, idle_ttl=max(idle_ttl, 0),
        seen_at=now, public=public, started_at=now,
        user_agent=(user_agent or "")[:USER_AGENT_CHARS], ip=ip or "",
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
    session = _from_stored(handle, data)
    return session if session.ends_at() > epoch() else None


def _from_stored(handle: str, data: dict) -> SsoSession:
    # Sessions stored by the release before issue 3 also hold an "acr";
    # those before issue 11 a list of "clients", and an idle limit only
    # on a public computer.
    data.pop("acr", None)
    clients = data.pop("clients", None)
    if clients is not None:
        data["relying_parties"] = [{"client_id": client_id, "at": data["auth_time"]}
                                   for client_id in clients]
        data.setdefault("public", data.get("idle_ttl", 0) > 0)
        data.setdefault("started_at", data["auth_time"])
    return SsoSession(handle=handle, **data)


#: A session's idle clock is restarted when at least this fraction of its
#: idle limit has passed since the last restart, so that an active user
#: costs one store write per tenth of the limit rather than one per request;
#: the session then ends between 90 % and 100 % of the limit after last use.
TOUCH_FRACTION = 10


def touch_session(store: Store, session: SsoSession) -> None:
    """Count a use of ``session`` against its idle limit (sliding expiry;
    nothing for a session without one). Writes the store at most once per
    ``idle_ttl / TOUCH_FRACTION`` seconds."""
    if session.idle_ttl <= 0:
        return
    now = epoch()
    if now - session.seen_at >= max(1, session.idle_ttl // TOUCH_FRACTION):
        session.seen_at = now
        save_session(store, session, moved=True)


def add_relying_party(store: Store, session: SsoSession, client_id: str) -> bool:
    """Remember that ``client_id`` took part in ``session``, for single
    logout (:mod:`idp.relying_parties`); written only the first time. The
    session's record keeps the client ids too, so that a later code to the
    same client costs no store read.

    :returns: False when the session ended meanwhile: a logout that read
        its parties before this one was written will not tell it, so the
        caller must not give the client anything for this session.
    """
    if client_id in session.client_ids:
        return True
    now = epoch()
    party = {"client_id": client_id, "at": now}
    relying_parties.add(store, session.sid, f"oidc:{client_id}", party,
                        session.expires_at - now + ENDED_KEPT_SECONDS)
    session.relying_parties.append(party)
    # The record is rewritten only while it lives (after the party was):
    # a logout in between has taken it, and the caller is told.
    return save_session(store, session)


def record_ticket(store: Store, account_id: int, sid: str, client_id: str, service: str,
                  ticket: str) -> bool:
    """Remember that the CAS service ``client_id`` validated ``ticket`` in
    the session ``sid`` (found through the account's list: the validating
    request carries no cookie), so that CAS single logout, sent to
    ``service``, names it.

    :returns: False when the session has ended.
    """
    found = _live_listed(store, account_id, sid)
    if found is None:
        return False
    key, session = found
    now = epoch()
    relying_parties.add(store, sid, f"cas:{ticket}", {
        "client_id": client_id, "service": service, "ticket": ticket, "at": now},
        session.expires_at - now + ENDED_KEPT_SECONDS)
    # Still live after the ticket was written: a logout from now on tells
    # this service; one in between did not, and the ticket is refused.
    return store.get(key) is not None


def find_session(store: Store, account_id: int, sid: str) -> SsoSession | None:
    """The live session ``sid`` of ``account_id``, found through the
    account's list (for a request that carries no cookie, such as a CAS
    validation), with an empty ``handle``; None when it has ended."""
    found = _live_listed(store, account_id, sid)
    return found[1] if found is not None else None


def _live_listed(store: Store, account_id: int, sid: str) -> tuple[str, SsoSession] | None:
    """``(store key, session)`` of the live session ``sid`` in the account's list."""
    key = _listed_key(store, account_id, sid)
    data = store.get(key) if key is not None else None
    if data is None:
        return None
    session = _from_stored("", data)
    return (key, session) if session.ends_at() > epoch() else None


def list_sessions(store: Store, account_id: int) -> list[SsoSession]:
    """The live sessions of ``account_id``, newest first. Their ``handle``
    is empty: a listing never hands out a cookie value. A session of an
    ended generation may be listed until its next :func:`resolve`; the
    account console shows sessions of the account's generation only."""
    index = store.map_get(_account_key(account_id))
    sids = list(index)
    found = store.get_many([index[sid]["key"] for sid in sids]) if sids else []
    now = epoch()
    live = [_from_stored("", data) for data in found if data is not None]
    live = [session for session in live if session.ends_at() > now]
    return sorted(live, key=lambda session: session.started_at, reverse=True)


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
    relying parties it served are told (:func:`idp.single_logout.announce`).
    Audits nothing itself (the caller records its own event, e.g. ``logout``).

    :param session: the session; one listed (:func:`list_sessions`, no
        handle) is ended all the same.
    :param reason: why, a short code (``logout``, ``new_login``,
        ``kiosk_card``, ``idle_timeout``, ``expired``, ``ended_by_user``);
        the reason of revoked grants' ``grant.revoked`` events.
    :param revoke_grants: also revoke the grants issued in this session
        (:func:`_revoke_grants`). A logout today does not: the relying
        parties' refresh tokens outlive the browser session.
    :param ip: the client IP for the audit events of revoked grants.
    :returns: how many grants were revoked.
    """
    key = (_key(session.handle) if session.handle
           else _listed_key(rt.store, session.account_id, session.sid))
    return _finish(rt, key, session, reason, revoke_grants=revoke_grants, ip=ip)


def _listed_key(store: Store, account_id: int, sid: str) -> str | None:
    """The store key of the session ``sid`` in ``account_id``'s list."""
    entry = store.map_get(_account_key(account_id)).get(sid)
    return entry["key"] if entry is not None else None


def _finish(rt: Runtime, key: str | None, session: SsoSession, reason: str, *,
            revoke_grants: bool, ip: str | None = None) -> int:
    """End ``session`` kept under ``key``: forget it, revoke what the rule
    says, and tell its relying parties once (whoever deletes the record
    first tells them; a second ending of the same session tells no one).

    :returns: how many grants were revoked.
    """
    first = key is not None and rt.store.take(key) is not None
    rt.store.map_delete(_account_key(session.account_id), session.sid)
    rt.store.queue_done(EXPIRY_QUEUE, session.sid)
    revoked = (_revoke_grants(rt, session.account_id, reason, ip, sid=session.sid)
               if revoke_grants else 0)
    if first:
        single_logout.announce(rt, session, reason)
    return revoked


def end_expired(rt: Runtime, limit: int = 100) -> int:
    """End the sessions that reached their idle or absolute limit, through
    :func:`end` (reason ``idle_timeout`` or ``expired``), so that their
    relying parties are told as at a logout. The single-logout worker calls
    it; each item is claimed, so any number of processes may.

    :param limit: most sessions to look at in one call.
    :returns: how many sessions were ended.
    """
    ended = 0
    for _ in range(limit):
        claimed = rt.store.queue_claim(EXPIRY_QUEUE, 60)
        if claimed is None:
            break
        sid, item = claimed
        data = rt.store.get(item["key"])
        if data is None or data.get("sid") != sid:
            rt.store.queue_done(EXPIRY_QUEUE, sid)
            continue
        session = _from_stored("", data)
        remaining = session.ends_at() - epoch()
        if remaining > 0:
            # Used meanwhile: its end moved (touch_session pushed it again,
            # unless this claim came between).
            rt.store.queue_push(EXPIRY_QUEUE, sid, item, remaining,
                                remaining + ENDED_KEPT_SECONDS)
            continue
        reason = "expired" if session.expires_at <= epoch() else "idle_timeout"
        _finish(rt, item["key"], session, reason, revoke_grants=False)
        ended += 1
    return ended


@dataclass(frozen=True)
class EndedSessions:
    """What :func:`end_all` did.

    :ivar grants_revoked: how many grants were revoked.
    :ivar kept: the session that goes on in the account's new generation
        under a new cookie value (when one was kept), else None.
    :ivar ended: how many listed live sessions ended.
    """

    grants_revoked: int
    kept: SsoSession | None
    ended: int = 0


def end_all(rt: Runtime, account: Account, reason: str, *, revoke_grants: bool,
            keep: SsoSession | None = None, ip: str | None = None) -> EndedSessions:
    """End every SSO session of ``account``, the one way an account's
    sessions end together: its session generation moves on (not committed:
    the caller commits), so each session of the old one counts as none
    when resolved (:func:`resolve`), as do e-mail links, device cookies
    and logins waiting for their second factor of the old generation; the
    relying parties of each listed session are told
    (:func:`idp.single_logout.announce`). Audits nothing itself.

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
    index = rt.store.map_get(_account_key(account.id))
    ended = 0
    for sid, entry in index.items():
        if keep is not None and sid == keep.sid:
            continue
        data = rt.store.get(entry["key"])
        if data is None:
            rt.store.map_delete(_account_key(account.id), sid)
            continue
        session = _from_stored("", data)
        ended += session.ends_at() > epoch()
        _finish(rt, entry["key"], session, reason, revoke_grants=False)
    return EndedSessions(revoked, kept, ended)


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


def _forget(store: Store, handle: str) -> None:
    store.delete(_key(handle))
