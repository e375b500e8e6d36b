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


def _key(handle: str) -> str:
    return _PREFIX + hashlib.sha256(handle.encode()).hexdigest()


def save_session(store: Store, session: SsoSession) -> None:
    """Persist changes to ``session`` for the rest of its lifetime."""
    remaining = session.expires_at - epoch()
    if remaining > 0:
        data = asdict(session)
        del data["handle"]
        store.put(_key(session.handle), data, remaining)


def create_session(
    store: Store, account_id: int, amr: list[str], ttl: int, generation: int = 0,
) -> SsoSession:
    """Start a new SSO session lasting ``ttl`` seconds (a fresh handle at every
    login prevents session fixation) in the account's session ``generation``."""
    now = epoch()
    session = SsoSession(
        handle=random_token(32), sid=random_token(16), account_id=account_id, auth_time=now,
        amr=amr, expires_at=now + ttl, generation=generation,
    )
    save_session(store, session)
    return session


def load_session(store: Store, handle: str | None) -> SsoSession | None:
    """The live session whose cookie value is ``handle``, or None."""
    if not handle or len(handle) > 128:
        return None
    data = store.get(_key(handle))
    if data is None or data["expires_at"] <= epoch():
        return None
    # Sessions stored by the release before issue 3 also hold an "acr".
    data.pop("acr", None)
    return SsoSession(handle=handle, **data)


def add_client(store: Store, session: SsoSession, client_id: str) -> None:
    """Remember that ``client_id`` took part in ``session``."""
    if client_id not in session.clients:
        session.clients.append(client_id)
        save_session(store, session)


def end_session(store: Store, handle: str) -> None:
    """Destroy the session whose cookie value is ``handle`` (logout)."""
    store.delete(_key(handle))
