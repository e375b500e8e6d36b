"""What the account console shows of a live SSO session ("where you are
logged in"): the browser and system from its ``User-Agent`` (``ua-parser``,
the uap-core rules), the network it signed in from, its times and the
portals that took part in it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from ua_parser import parse

from idp import relying_parties
from idp.runtime import Runtime
from idp.sessions import SsoSession
from idp.timeutil import from_epoch


@dataclass(frozen=True)
class ListedSession:
    """One row of the list.

    :ivar sid: the session's public id (what the "log out" form names).
    :ivar browser: e.g. ``Chrome 120``; empty when unknown.
    :ivar system: e.g. ``Windows 10``; empty when unknown.
    :ivar network: the client IP's network, e.g. ``203.0.113.0/24`` (an
        IPv6 /48): an approximate place, never the full address of another
        device; empty when unknown.
    :ivar started_at: the login (UTC).
    :ivar last_used_at: the last request that used it (UTC).
    :ivar portals: names of the relying parties that took part in it.
    :ivar current: the session of the browser looking at the list.
    :ivar public: a public computer's session.
    """

    sid: str
    browser: str
    system: str
    network: str
    started_at: datetime
    last_used_at: datetime
    portals: list[str]
    current: bool
    public: bool


def describe(rt: Runtime, session: SsoSession, current_sid: str | None) -> ListedSession:
    """The row of ``session``; ``current_sid`` is the sid of the browser's own."""
    browser, system = browser_of(session.user_agent)
    names = []
    for client_id in dict.fromkeys(party["client_id"]
                                   for party in relying_parties.of(rt.store, session)):
        client = rt.clients.get(client_id)
        names.append(client.name if client is not None else client_id)
    return ListedSession(
        sid=session.sid, browser=browser, system=system, network=network_of(session.ip),
        started_at=from_epoch(session.started_at or session.auth_time),
        last_used_at=from_epoch(max(session.seen_at, session.auth_time)), portals=names,
        current=session.sid == current_sid, public=session.public)


def browser_of(user_agent: str) -> tuple[str, str]:
    """``(browser, system)`` of a ``User-Agent``, each its family and major
    version (``("Chrome 120", "Windows 10")``), empty when unknown."""
    if not user_agent:
        return "", ""
    found = parse(user_agent)
    return _named(found.user_agent), _named(found.os)


def _named(part) -> str:
    if part is None or part.family == "Other":
        return ""
    return " ".join(filter(None, (part.family, part.major)))


def network_of(ip: str) -> str:
    """The network of ``ip`` that the list shows: its /24 (IPv4) or /48
    (IPv6); empty when it is not an address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
