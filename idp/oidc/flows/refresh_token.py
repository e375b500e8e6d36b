"""The refresh token flow (RFC 6749 §6) with rotation (RFC 9700 §4.14.2)."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError

from idp.accounts.models import Account
from idp.accounts.service import get_account
from idp.authorizations.models import Grant
from idp.authorizations.refresh_tokens import (
    RefreshTokenReuseError,
    consume_refresh_token,
    find_usable_refresh_token,
)
from idp.oidc.client_auth import TOKEN_AUTH_METHODS
from idp.oidc.flows.user_tokens import issue_user_tokens
from idp.runtime import current_runtime
from idp.web import client_ip


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh with rotation; reuse of a rotated token revokes the family
    (RFC 9700 §4.14.2). A new ID token keeps ``sub`` and the original
    ``auth_time`` (OIDC Core §12.2) and carries no ``nonce``.

    The tokens never carry more than was granted (RFC 6749 §6) nor more than
    the client's registration allows now: a scope removed from it
    (``idp clients update --scope``) is dropped from every grant made before,
    and without ``offline_access`` the refresh tokens stop."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self):
        rt = current_runtime()
        client = self._validate_request_client()
        self.request.client = client
        value = self.request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        found: dict[str, Account] = {}

        def check(grant: Grant) -> None:
            # Refusals that leave the token unused: the client may ask again.
            account = get_account(grant.account_id)
            if account is None or not account.may_receive_tokens:
                raise InvalidGrantError("The account cannot receive tokens.")
            scope = self.request.payload.scope
            if scope and not set(scope_to_list(scope)) <= set(scope_to_list(grant.scope)):
                raise InvalidScopeError("The requested scope exceeds the original grant.")
            # A refresh token is the grant's offline access (OIDC Core §11);
            # the registration no longer allows it, so the family ends here.
            if "offline_access" not in scope_to_list(client.scope):
                raise InvalidGrantError(
                    "The client is no longer registered for offline_access.")
            found["account"] = account

        try:
            usable = find_usable_refresh_token(rt, value, client.client_id, client_ip(),
                                               check=check)
        except RefreshTokenReuseError:
            raise InvalidGrantError("The refresh token was already used.") from None
        if usable is None:
            raise InvalidGrantError("The refresh token is invalid, expired or revoked.")
        self.request.refresh_token_id, self.request.grant_record = usable
        self.request.user = found["account"]

    def create_token_response(self):
        rt = current_runtime()
        grant: Grant = self.request.grant_record
        client = self.request.client
        # The response names the scope, which differs from the request when
        # the registration dropped some of it (RFC 6749 §5.1).
        scope = client.get_allowed_scope(self.request.payload.scope or grant.scope)
        def rotate() -> None:
            try:
                rotated = consume_refresh_token(rt, self.request.refresh_token_id, grant,
                                                client_ip())
            except RefreshTokenReuseError:
                raise InvalidGrantError("The refresh token was already used.") from None
            if not rotated:
                raise InvalidGrantError("The refresh token is invalid, expired or revoked.")

        token = issue_user_tokens(rt, client, grant, self.request.user, scope, True, None,
                                  decide=rotate)
        return 200, token, self.TOKEN_RESPONSE_HEADER

