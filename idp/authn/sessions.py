"""SSO sessions: the browser-level login at the provider, kept in the store.

The browser holds only a random session id; everything else lives in the
store under ``sso:<sid>`` so any worker process can serve the next request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from idp.security import random_token
from idp.store import Store
from idp.timeutil import epoch

_PREFIX = "sso:"


@dataclass
class SsoSession:
    """One SSO session.

    :ivar sid: session id, also the ``sid`` claim (OpenID Front/Back-Channel Logout).
    :ivar account_id: internal account id.
    :ivar auth_time: Unix seconds of the last authentication in this session.
    :ivar amr: RFC 8176 authentication method references of that authentication.
    :ivar acr: authentication context class reference achieved.
    :ivar expires_at: Unix seconds when the session ends.
    :ivar clients: client_ids that received tokens in this session (for logout).
    """

    sid: str
    account_id: int
    auth_time: int
    amr: list[str]
    acr: str | None
    expires_at: int
    clients: list[str] = field(default_factory=list)


def create_session(
    store: Store, account_id: int, amr: list[str], acr: str | None, ttl: int
) -> SsoSession:
    """Start a new SSO session lasting ``ttl`` seconds (a fresh sid every login
    prevents session fixation)."""
    now = epoch()
    session = SsoSession(
        sid=random_token(24), account_id=account_id, auth_time=now, amr=amr, acr=acr,
        expires_at=now + ttl,
    )
    store.put(_PREFIX + session.sid, asdict(session), ttl)
    return session


def load_session(store: Store, sid: str | None) -> SsoSession | None:
    """The live session for ``sid``, or None."""
    if not sid or len(sid) > 64:
        return None
    data = store.get(_PREFIX + sid)
    if data is None or data["expires_at"] <= epoch():
        return None
    return SsoSession(**data)


def add_client(store: Store, session: SsoSession, client_id: str) -> None:
    """Remember that ``client_id`` took part in ``session``."""
    if client_id in session.clients:
        return
    session.clients.append(client_id)
    remaining = session.expires_at - epoch()
    if remaining > 0:
        store.put(_PREFIX + session.sid, asdict(session), remaining)


def end_session(store: Store, sid: str) -> None:
    """Destroy the session ``sid`` (logout)."""
    store.delete(_PREFIX + sid)
