"""SSO sessions: the browser-level login at the provider, kept in the store.

The browser holds a random secret handle in its cookie; the store keeps the
session under a hash of that handle, so neither a store dump nor any token
reveals a usable cookie. The session's public id, ``sid``, is a separate
random value: it goes into ID tokens (OpenID Connect Front-/Back-Channel
Logout) and can never be replayed as a cookie.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

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


def save_session(store: Store, session: SsoSession) -> None:
    """Persist changes to ``session`` for the rest of its lifetime (until
    :meth:`SsoSession.ends_at`: the store forgets an idle public session by itself)."""
    remaining = session.ends_at() - epoch()
    if remaining > 0:
        data = asdict(session)
        del data["handle"]
        store.put(_key(session.handle), data, remaining)


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
    save_session(store, session)
    return session


def load_session(store: Store, handle: str | None) -> SsoSession | None:
    """The live session whose cookie value is ``handle``, or None."""
    if not handle or len(handle) > 128:
        return None
    data = store.get(_key(handle))
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


def end_session(store: Store, handle: str) -> None:
    """Destroy the session whose cookie value is ``handle`` (logout)."""
    store.delete(_key(handle))
