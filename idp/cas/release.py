"""What a CAS service receives about the user: the ``user`` and the
attributes of CAS 3.0 §2.5.2 / Appendix A, by the rules of an OpenID
Connect client (:mod:`idp.oidc.subjects`, :mod:`idp.oidc.claims`), so that
one account looks the same to a department whichever protocol its portal
speaks.

- ``user``: a department's service (``--department``) sees the account's
  old login name there, so its user table keeps working: the department
  alias when the fold gave one, else the provider username when the fold
  gave it that; any other service sees the ``sub`` an OpenID Connect client
  of its registration would (pairwise by default).
- attributes: the UserInfo claims of the service's registered scopes (the
  consent covers them), ``legacy_ids`` under ``legacy``, and the
  authentication: ``authenticationDate``, ``isFromNewLogin``,
  ``longTermAuthenticationRequestTokenUsed`` (always false: there is no
  "remember me"), ``authenticationMethod`` (the RFC 8176 ``amr`` values)
  and ``acr``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from idp.accounts import links
from idp.accounts.models import Account
from idp.accounts.service import phone_for_scope
from idp.cas.tickets import Ticket
from idp.clients.cache import ClientInfo
from idp.oidc.claims import select_claims
from idp.oidc.identity import identity_claims
from idp.oidc.legacy_claims import legacy_claims
from idp.oidc.subjects import subject_for
from idp.runtime import Runtime


def cas_user(rt: Runtime, client: ClientInfo, account: Account) -> str:
    """The ``user`` of a validation answer for ``client`` (module docstring)."""
    if client.department is not None:
        aliases = links.links_of(rt, account, "alias", client.department)
        if aliases:
            return aliases[0].value
        if links.links_of(rt, account, "legacy", client.department):
            return account.username
    return subject_for(rt, client, account)


def attributes(rt: Runtime, client: ClientInfo, account: Account,
               ticket: Ticket) -> dict[str, list[Any]]:
    """The attributes of a validation answer (module docstring), each a list
    of values (CAS attributes are multi-valued)."""
    scope = client.scope
    released: dict[str, Any] = {}
    released.update(select_claims(account, scope, None, by_scope=True,
                                  phone_number=phone_for_scope(rt, account, scope)))
    released.update(identity_claims(rt, account, scope, None, userinfo=True))
    released.update(legacy_claims(rt, client, account, scope))
    values = {name: value if isinstance(value, list) else [value]
              for name, value in released.items() if value is not None}
    values.update({
        "authenticationDate": [datetime.fromtimestamp(ticket.auth_time, UTC)
                               .isoformat().replace("+00:00", "Z")],
        "isFromNewLogin": [ticket.new_login],
        "longTermAuthenticationRequestTokenUsed": [False],
        "authenticationMethod": list(ticket.amr),
    })
    if ticket.acr is not None:
        values["acr"] = [ticket.acr]
    return values
