"""Subject identifiers (OIDC Core §8): the ``sub`` a client sees.

A ``public`` client sees the account's own opaque subject. A ``pairwise``
client sees a value derived for its sector (the host of its redirect URIs
or of its ``sector_identifier_uri``, §8.1), so clients of different sectors
cannot correlate one person by ``sub``, while the relying parties of one sector
still see the same value. The derivation is an HMAC-SHA256 under the
``pairwise_key`` secret: without that key nobody can link two pairwise
subjects, or a pairwise subject to the public one. The resident ID number
is never part of any subject.

The SSO session id (``sid``, OIDC Front-/Back-Channel Logout) is treated
alike: a pairwise client sees a session id derived for its sector, or two
sectors could link one person by the session their logins share.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from idp.accounts.models import Account
from idp.runtime import Runtime


def pairwise_subject(key: bytes, sector: str, subject: str) -> str:
    """OIDC Core §8.1: ``sub`` = a keyed hash of the sector and the local
    account id. Returns 43 base64url characters (256 bits)."""
    mac = hmac.new(key, f"{sector}\x00{subject}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def subject_for(rt: Runtime, client, account: Account) -> str:
    """The ``sub`` of ``account`` as ``client`` (a ClientInfo) sees it."""
    if client is None or client.subject_type != "pairwise":
        return account.subject
    return pairwise_subject(rt.pairwise_key, client.sector_identifier or client.client_id,
                            account.subject)


def client_sid(rt: Runtime, client, sid: str | None) -> str | None:
    """The ``sid`` claim ``client`` (a ClientInfo, or None) sees for the SSO
    session whose public id is ``sid``: the session's own for public-subject
    clients; for pairwise clients a keyed hash of their sector (or
    client_id) and ``sid``, 22 base64url characters (128 bits), so clients
    of different sectors cannot correlate a person by the session.

    The same for every token of one grant (refresh keeps it), and computable
    from the session alone, so a logout can find each client's value.
    Returns None when ``sid`` is None.
    """
    if sid is None or client is None or client.subject_type != "pairwise":
        return sid
    sector = client.sector_identifier or client.client_id
    mac = hmac.new(rt.pairwise_key, f"sid\x00{sector}\x00{sid}".encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")
