"""Single logout: when an SSO session ends, every relying party that took
part in it is told, whatever ended it (:mod:`idp.sessions` calls
:func:`announce` from its one door).

- OpenID Connect Back-Channel Logout 1.0: a client with a
  ``backchannel_logout_uri`` gets a logout token POSTed to it.
- CAS single logout (CAS 3.0 §2.3.3): a CAS service gets a SAML
  ``LogoutRequest`` naming each service ticket it validated.

Both go through one delivery queue in the store (:data:`QUEUE`), worked by
a background thread in every provider process
(:mod:`idp.single_logout.worker`), with timeouts and bounded retries, so a
slow or dead relying party never delays the user's logout page.
Front-Channel Logout 1.0 is not queued: the logout page loads those URIs
in the user's browser (:func:`frontchannel_uris`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from idp import relying_parties
from idp.accounts.service import get_account
from idp.oidc.subjects import client_sid, subject_for
from idp.runtime import Runtime
from idp.security import random_token

if TYPE_CHECKING:
    from idp.sessions import SsoSession

#: The store queue of deliveries (item: a random id).
QUEUE = "logout_deliveries"
#: Seconds a delivery is kept in the queue at most, retries included.
DELIVERY_TTL = 86400


def announce(rt: Runtime, session: SsoSession, reason: str) -> int:
    """Queue a delivery for each relying party of the ended ``session``
    that asked to be told (:func:`idp.relying_parties.of`): a back-channel
    logout token for a client with a ``backchannel_logout_uri``; a CAS
    ``LogoutRequest`` for each service ticket validated in it. The ``sub`` and ``sid`` each
    client sees are fixed now (pairwise ones included), so a later change
    of the account does not change whom the token names.

    :param reason: why the session ended (``logout``, ``idle_timeout``...),
        kept for the audit trail.
    :returns: how many deliveries were queued.
    """
    parties = relying_parties.of(rt.store, session)
    account = get_account(session.account_id) if parties else None
    queued = 0
    for party in parties:
        client = rt.clients.get(party["client_id"])
        if client is None:
            continue
        common = {"client_id": client.client_id, "account_id": session.account_id,
                  "reason": reason, "attempt": 1}
        if "ticket" in party:
            _queue(rt, {**common, "kind": "cas", "uri": party["service"],
                        "ticket": party["ticket"]})
            queued += 1
        elif client.backchannel_logout_uri:
            _queue(rt, {**common, "kind": "backchannel", "uri": client.backchannel_logout_uri,
                        "sub": subject_for(rt, client, account) if account else None,
                        "sid": client_sid(rt, client, session.sid)})
            queued += 1
    if queued and rt.logout is not None:
        rt.logout.wake()
    return queued


def _queue(rt: Runtime, item: dict) -> None:
    rt.store.queue_push(QUEUE, random_token(16), item, 0, DELIVERY_TTL)


def frontchannel_uris(rt: Runtime, session: SsoSession) -> list[str]:
    """The front-channel logout URIs the logout page loads for ``session``
    (Front-Channel Logout 1.0 §2): one per client of the session that
    registered one, with ``iss`` and its ``sid`` added to the query when
    it asked for them (§2, ``frontchannel_logout_session_required``)."""
    uris = []
    for client_id in dict.fromkeys(party["client_id"] for party in
                                   relying_parties.of(rt.store, session)
                                   if "ticket" not in party):
        client = rt.clients.get(client_id)
        if client is None or not client.frontchannel_logout_uri:
            continue
        uri = client.frontchannel_logout_uri
        if client.frontchannel_logout_session_required:
            query = urlencode({"iss": rt.issuer, "sid": client_sid(rt, client, session.sid)})
            uri += ("&" if urlsplit(uri).query else "" if uri.endswith("?") else "?") + query
        uris.append(uri)
    return uris
