"""The relying parties of an SSO session, for single logout: a store map
per session with a field per party (an OpenID Connect client, or a CAS
service ticket that was validated), so that concurrent writers (a CAS
validation, a code issued to another portal, the idle clock) never lose
each other's entry, as a rewrite of the whole session record would.

At most :data:`MAX_PARTIES` entries are kept per session: what a user's
browser can make the provider record (a CAS ticket per login) must not
grow without bound. A session at the limit gives up the oldest ticket of
the same service for a new one (the portal session behind an old ticket
has most likely ended long before), never another service's entry: one
service cannot push another out of single logout. (The limit is checked
before the write, so writers at the same moment may pass it by a few.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from idp.store import Store

if TYPE_CHECKING:
    from idp.sessions import SsoSession

_PREFIX = "sso_parties:"
#: Most relying-party entries one session keeps.
MAX_PARTIES = 100


def _key(sid: str) -> str:
    return _PREFIX + sid


def add(store: Store, sid: str, field: str, value: dict, ttl: int) -> bool:
    """Record ``value`` as the party ``field`` of the session ``sid`` for
    ``ttl`` seconds (the session's remaining life and then some).

    :returns: False when the session holds :data:`MAX_PARTIES` already and
        none of them is a ticket of the same service to give up (nothing is
        recorded).
    """
    entries = store.map_get(_key(sid))
    if field not in entries and len(entries) >= MAX_PARTIES:
        own = sorted((party.get("at", 0), name) for name, party in entries.items()
                     if "ticket" in party and party["client_id"] == value["client_id"])
        if "ticket" not in value or not own:
            return False
        store.map_delete(_key(sid), own[0][1])
    store.map_put(_key(sid), field, value, max(ttl, 1))
    return True


def of(store: Store, session: SsoSession) -> list[dict]:
    """Every relying party of ``session``, oldest first: the entries of its
    map, and those its record holds from before the map existed. Each is a
    dict with ``client_id`` and ``at``; a CAS entry also has ``service``
    (where its single logout goes) and ``ticket``."""
    parties = list(store.map_get(_key(session.sid)).values())
    mapped = {party["client_id"] for party in parties if "ticket" not in party}
    parties += [party for party in session.relying_parties
                if party["client_id"] not in mapped and "ticket" not in party]
    return sorted(parties, key=lambda party: (party.get("at", 0), party["client_id"],
                                              party.get("ticket", "")))
