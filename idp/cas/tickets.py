"""CAS tickets (CAS 3.0 §3): service tickets (``ST-``), proxy tickets
(``PT-``), proxy-granting tickets (``PGT-``) and their IOUs (``PGTIOU-``).

A ticket is 256 random bits after its prefix; the store keeps it only
under a keyed hash (:func:`idp.security.keyed_hash`), so a store dump
holds no usable ticket. Service and proxy tickets are single-use (taken
from the store by their first validation, whatever its outcome, §3.1.1)
and live :data:`SERVICE_TICKET_TTL` seconds; a proxy-granting ticket lives
as long as the SSO session it came from, and never beyond
:data:`PROXY_GRANTING_TICKET_TTL`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from idp.runtime import Runtime
from idp.security import keyed_hash, random_token

#: Seconds a service or proxy ticket may wait for its validation (CAS 3.0
#: §3.1.1 recommends no more than five minutes; ten seconds covers a
#: redirect and a back-channel call).
SERVICE_TICKET_TTL = 10
#: Longest life of a proxy-granting ticket, seconds.
PROXY_GRANTING_TICKET_TTL = 7200
#: Longest ticket accepted (CAS 3.0 §3.1.1 asks clients to take 256 characters).
MAX_TICKET = 256
_PREFIX = "cas_ticket:"
_PURPOSE = "cas_ticket"


@dataclass
class Ticket:
    """What a ticket stands for.

    :ivar kind: ``ST``, ``PT`` or ``PGT``.
    :ivar client_id: the CAS service it was issued to (for a ``PGT``, the
        service that received it, which may ask proxy tickets with it).
    :ivar service: the service URL it is bound to (none for a ``PGT``).
    :ivar account_id: the account that logged in.
    :ivar sid: the SSO session's public id.
    :ivar auth_time: Unix seconds of that session's last authentication.
    :ivar amr: its authentication methods.
    :ivar acr: the ``acr`` the login achieved for this service.
    :ivar new_login: issued right after the user typed credentials for
        this request (``renew``, CAS 3.0 §2.1.1), not from an existing session.
    :ivar proxies: for a proxy ticket or its ``PGT``, the proxy callback
        URLs it went through, the most recent first (§2.6.2).
    """

    kind: str
    client_id: str
    service: str
    account_id: int
    sid: str
    auth_time: int
    amr: list[str]
    acr: str | None
    new_login: bool
    proxies: list[str] = field(default_factory=list)


def _key(rt: Runtime, ticket: str) -> str:
    return _PREFIX + keyed_hash(rt.token_hmac_key, ticket, _PURPOSE)


def issue(rt: Runtime, ticket: Ticket, ttl: int) -> str:
    """Store ``ticket`` for ``ttl`` seconds and return its value:
    ``<kind>-`` and 43 random characters."""
    value = f"{ticket.kind}-{random_token(32)}"
    rt.store.put(_key(rt, value), asdict(ticket), ttl)
    return value


def take(rt: Runtime, value: str) -> Ticket | None:
    """The ticket ``value``, taken out of the store (single use); None when
    unknown, expired, used, or not a ticket at all."""
    if not value or len(value) > MAX_TICKET:
        return None
    data = rt.store.take(_key(rt, value))
    return Ticket(**data) if data is not None else None


def read(rt: Runtime, value: str) -> Ticket | None:
    """The proxy-granting ticket ``value`` without using it up (it grants
    any number of proxy tickets while it lives); None when unknown."""
    if not value or len(value) > MAX_TICKET:
        return None
    data = rt.store.get(_key(rt, value))
    return Ticket(**data) if data is not None else None


def iou() -> str:
    """A proxy-granting ticket IOU (§3.4): what the validation answer names,
    matched by the service with what its callback received."""
    return f"PGTIOU-{random_token(32)}"
