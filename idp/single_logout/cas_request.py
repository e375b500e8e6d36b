"""The SAML ``LogoutRequest`` of CAS single logout (CAS 3.0 §2.3.3,
Appendix C): POSTed to a CAS service as the ``logoutRequest`` parameter,
naming the service ticket of the session that ended as its
``SessionIndex``."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

from idp.security import random_token


def logout_request(ticket: str) -> str:
    """The ``LogoutRequest`` document for the service ticket ``ticket``,
    as Apereo CAS sends it: a fresh ``ID``, the ``IssueInstant`` in UTC,
    ``NameID`` ``@NOT_USED@`` (the CAS clients read only the
    ``SessionIndex``)."""
    instant = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="LR-{random_token(16)}" Version="2.0" IssueInstant="{instant}">'
        "<saml:NameID>@NOT_USED@</saml:NameID>"
        f"<samlp:SessionIndex>{escape(ticket)}</samlp:SessionIndex>"
        "</samlp:LogoutRequest>"
    )
