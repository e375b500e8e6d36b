"""The client credentials flow (RFC 6749 §4.4)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidScopeError, UnauthorizedClientError

from idp.audit.service import record_deferred
from idp.clients.cache import ClientInfo
from idp.oidc.tokens import issue_access_token
from idp.runtime import Runtime, current_runtime
from idp.web import client_ip


def client_credentials_token(rt: Runtime, client: ClientInfo, requested: str | None,
                             ip: str | None) -> dict[str, Any]:
    """The access token of a client credentials grant (RFC 6749 §4.4.3) for
    ``client``, authenticated and registered for the grant, with its
    ``token.issued`` audit event.

    :param requested: the ``scope`` parameter (§3.3); without one the token
        carries no scope (least privilege). ``openid`` and ``offline_access``
        concern users and are never granted here.
    :param ip: the caller's address, for the audit trail.
    :returns: the token response (§5.1): ``access_token``, ``token_type``,
        ``expires_in`` (seconds) and ``scope`` when there is one.
    :raises InvalidScopeError: a requested scope the client may not have (§5.2).
    """
    allowed = [s for s in scope_to_list(client.scope) if s not in ("openid", "offline_access")]
    scope_list = list(dict.fromkeys(scope_to_list(requested))) if requested else []
    if any(s not in allowed for s in scope_list):
        raise InvalidScopeError("The requested scope is not allowed for this client.")
    scope = " ".join(scope_list)
    access_token, expires_in = issue_access_token(
        rt, client_id=client.client_id, scope=scope, subject=None)
    record_deferred(rt.audit, "token.issued", client_id=client.client_id, ip=ip,
                    grant_type="client_credentials", scope=scope)
    token: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer",
                             "expires_in": expires_in}
    if scope:
        token["scope"] = scope
    return token


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """Client credentials grant (RFC 6749 §4.4): an access token for the client itself."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                "The client is not authorized to use 'grant_type=client_credentials'")
        self.request.client = client

    def create_token_response(self):
        token = client_credentials_token(current_runtime(), self.request.client,
                                         self.request.payload.scope, client_ip())
        return 200, token, self.TOKEN_RESPONSE_HEADER
