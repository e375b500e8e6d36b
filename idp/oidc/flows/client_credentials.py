"""The client credentials flow (RFC 6749 §4.4)."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidScopeError, UnauthorizedClientError

from idp.audit.service import record_deferred
from idp.oidc.tokens import issue_access_token
from idp.runtime import current_runtime
from idp.web import client_ip


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
        rt = current_runtime()
        client = self.request.client
        requested = self.request.payload.scope
        allowed = [s for s in scope_to_list(client.scope) if s not in ("openid", "offline_access")]
        # Least privilege: without a scope parameter the token carries none.
        scope_list = list(dict.fromkeys(scope_to_list(requested))) if requested else []
        if any(s not in allowed for s in scope_list):
            raise InvalidScopeError("The requested scope is not allowed for this client.")
        scope = " ".join(scope_list)
        access_token, expires_in = issue_access_token(
            rt, client_id=client.client_id, scope=scope, subject=None)
        record_deferred(rt.audit, "token.issued", client_id=client.client_id, ip=client_ip(),
                        grant_type="client_credentials", scope=scope)
        token = {"access_token": access_token, "token_type": "Bearer",
                 "expires_in": expires_in}
        if scope:
            token["scope"] = scope
        return 200, token, self.TOKEN_RESPONSE_HEADER
