"""Rules of the endpoints where clients present tokens: UserInfo (OIDC Core
§5.3), revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list

from idp.accounts.service import get_account, phone_for_scope
from idp.audit.service import record_deferred
from idp.authorizations.models import Grant
from idp.authorizations.refresh_tokens import find_refresh_token
from idp.authorizations.service import revoke_grant
from idp.extensions import db
from idp.oidc.claims import select_claims
from idp.oidc.identity import identity_claims
from idp.oidc.legacy_claims import legacy_claims
from idp.oidc.subjects import subject_for
from idp.oidc.tokens import InvalidTokenError, check_access_token, revoke_access_token
from idp.runtime import Runtime
from idp.timeutil import to_epoch, utcnow

#: Access-token claims an introspection answer repeats (RFC 7662 §2.2).
INTROSPECTED_CLAIMS = ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti",
                       "auth_time", "acr")


class InsufficientScopeError(Exception):
    """The token is valid but lacks the ``openid`` scope (RFC 6750 §3.1).

    :ivar client_id: the client the token was issued to.
    """

    def __init__(self, client_id: str | None) -> None:
        super().__init__("the token lacks the openid scope")
        self.client_id = client_id


def _account_may_receive_tokens(grant: Grant) -> bool:
    account = get_account(grant.account_id)
    return account is not None and account.may_receive_tokens


def userinfo(rt: Runtime, access_token: str) -> tuple[str, dict[str, Any]]:
    """Claims about the token's account, limited by its scope, by what the
    client's registration allows now (:func:`check_access_token`) and by
    the ``claims`` request of its grant.

    :returns: ``(client_id, claims)``: the client the token was issued to
        (whose allowed origins decide CORS) and the UserInfo claims.
    :raises InvalidTokenError: invalid, expired or revoked token, a client
        token, or an account that may no longer receive tokens.
    :raises InsufficientScopeError: the token lacks ``openid``.
    """
    token = check_access_token(rt, access_token)
    claims, grant, account = token.claims, token.grant, token.account
    if "openid" not in scope_to_list(claims.get("scope", "")):
        raise InsufficientScopeError(claims.get("client_id"))
    if grant is None or account is None:
        raise InvalidTokenError("no live grant or account behind the token",
                                claims.get("client_id"))
    client = rt.clients.get(grant.client_id)
    body = {"sub": subject_for(rt, client, account)}
    requested = (grant.claims or {}).get("userinfo")
    body.update(select_claims(account, claims["scope"], requested, by_scope=True,
                              phone_number=phone_for_scope(rt, account, claims["scope"])))
    body.update(identity_claims(rt, account, claims["scope"], requested, userinfo=True))
    body.update(legacy_claims(rt, client, account, claims["scope"]))
    return grant.client_id, body


def revoke(rt: Runtime, client_id: str, token: str, hint: str | None,
           ip: str | None) -> None:
    """Revoke ``token`` if it belongs to ``client_id``; anything else is
    silently ignored (RFC 7009 §2.2). A refresh token takes its whole grant
    with it, access tokens included (§2.1)."""
    if hint != "access_token":
        row = find_refresh_token(rt, token)
        grant = db.session.get(Grant, row.grant_id) if row is not None else None
        if grant is not None and grant.client_id == client_id:
            revoke_grant(rt, grant.id, "revoked_by_client", ip)
            return
    try:
        claims = check_access_token(rt, token).claims
    except InvalidTokenError:
        return
    if claims.get("client_id") == client_id:
        revoke_access_token(rt, claims)
        record_deferred(rt.audit, "token.revoked", client_id=client_id, ip=ip,
                        jti=claims["jti"], token_type="access_token")


def introspect(rt: Runtime, client_id: str, token: str, ip: str | None, *,
               resource_server: bool = False) -> dict[str, Any]:
    """The RFC 7662 §2.2 answer for ``token``: ``{"active": false}`` for
    anything not live, so nothing is revealed about invalid tokens. The
    ``scope`` reported is what the token is still good for, limited by the
    client's registration as it is now.

    A client learns only about its own tokens; an access token of another
    client is ``active`` only to a client registered as a resource server
    (``resource_server``), which is who receives such tokens. A refresh
    token is known only to the client it was issued to, since nobody else
    has a reason to hold it (RFC 7662 §4: the server decides which clients
    may learn about which tokens).
    """
    body: dict[str, Any] = {"active": False}
    try:
        claims = check_access_token(rt, token).claims
    except InvalidTokenError:
        row = find_refresh_token(rt, token)
        grant = db.session.get(Grant, row.grant_id) if row is not None else None
        client = rt.clients.get(client_id)
        # As the refresh grant would answer: the scope the registration
        # still allows, and none at all without offline_access.
        scope = client.get_allowed_scope(grant.scope) if grant is not None else ""
        if (grant is not None and grant.client_id == client_id
                and "offline_access" in scope_to_list(scope)
                and _account_may_receive_tokens(grant)
                and row.used_at is None and row.revoked_at is None
                and grant.revoked_at is None and row.expires_at > utcnow()):
            account = get_account(grant.account_id)
            body = {"active": True, "token_type": "refresh_token", "scope": scope,
                    "client_id": grant.client_id,
                    "sub": subject_for(rt, client, account) if account else None,
                    "exp": to_epoch(row.expires_at), "iat": to_epoch(row.created_at),
                    "iss": rt.issuer}
    else:
        if claims.get("client_id") == client_id or resource_server:
            body = {"active": True, "token_type": "Bearer",
                    **{k: claims[k] for k in INTROSPECTED_CLAIMS if k in claims}}
    record_deferred(rt.audit, "token.introspected", client_id=client_id, ip=ip,
                    active=body["active"])
    return body
