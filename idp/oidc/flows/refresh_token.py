"""The refresh token flow (RFC 6749 §6) with rotation (RFC 9700 §4.14.2)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError

from idp.authorizations.refresh_tokens import (
    RefreshTokenReuseError,
    consume_refresh_token,
    find_usable_refresh_token,
    new_refresh_token,
    rotate_in_group,
)
from idp.clients.cache import ClientInfo
from idp.oidc.client_auth import TOKEN_AUTH_METHODS
from idp.oidc.flows.user_tokens import issue_user_tokens
from idp.runtime import Runtime, current_runtime
from idp.unit_of_work import wrote
from idp.web import client_ip


def refresh_token_response(rt: Runtime, client: ClientInfo, value: str,
                           requested_scope: str | None, ip: str | None, *,
                           revoke_on_reuse: bool = True, grouped: bool = False,
                           ) -> dict[str, Any]:
    """Rotate the refresh token ``value`` of ``client`` (authenticated and
    registered for the grant) into a new token response (RFC 6749 §6, RFC
    9700 §4.14.2). A new ID token keeps ``sub`` and the original
    ``auth_time`` (OIDC Core §12.2) and carries no ``nonce``.

    The tokens never carry more than was granted (RFC 6749 §6) nor more than
    the client's registration allows now: a scope removed from it
    (``idp clients update --scope``) is dropped from every grant made
    before, and without ``offline_access`` the refresh tokens stop. The
    rotation is written last, in the caller's transaction, once the new
    tokens are signed; the ``token.issued`` audit event follows its commit.

    :param requested_scope: the request's ``scope`` parameter, or None.
    :param ip: the caller's address, for the audit trail.
    :param revoke_on_reuse: False to refuse a replayed token without revoking
        its family, for a caller that hands the request on to one that
        revokes (:mod:`idp.oidc.lanes`).
    :param grouped: commit the rotation in the process's group commit
        (:func:`~idp.authorizations.refresh_tokens.rotate_in_group`), for a
        caller whose transaction writes nothing else; it implies
        ``revoke_on_reuse=False``. The token response then comes after the
        rotation's commit, and the caller's commit only queues the audit.
    :returns: the token response (RFC 6749 §5.1).
    :raises InvalidGrantError: an unknown, expired, revoked or replayed
        token (a replay revokes the family, with ``revoke_on_reuse``), an
        account that may no longer receive tokens, or a client no longer
        registered for ``offline_access``.
    :raises InvalidScopeError: a scope beyond the grant's. Every refusal but
        a replay leaves the token unused, so a client that corrects its
        request is not taken for a thief replaying it.
    :raises StoreError: the account's version cannot be read.
    """
    try:
        usable = find_usable_refresh_token(rt, value, client.client_id, ip,
                                           revoke_on_reuse=revoke_on_reuse)
    except RefreshTokenReuseError:
        raise InvalidGrantError("The refresh token was already used.") from None
    if usable is None:
        raise InvalidGrantError("The refresh token is invalid, expired or revoked.")
    row_id, grant = usable
    # Refusals that leave the token unused: the client may ask again.
    account = rt.accounts.get(grant.account_id)
    if account is None or not account.may_receive_tokens:
        raise InvalidGrantError("The account cannot receive tokens.")
    if requested_scope and not (set(scope_to_list(requested_scope))
                                <= set(scope_to_list(grant.scope))):
        raise InvalidScopeError("The requested scope exceeds the original grant.")
    # A refresh token is the grant's offline access (OIDC Core §11), which
    # the registration no longer allows: no rotation while so.
    if "offline_access" not in scope_to_list(client.scope):
        raise InvalidGrantError("The client is no longer registered for offline_access.")
    # The response names the scope, which differs from the request when
    # the registration dropped some of it (RFC 6749 §5.1).
    scope = client.get_allowed_scope(requested_scope or grant.scope)

    # A transaction that has written holds SQLite's write lock, which the
    # group's transaction would wait for: it rotates in its own.
    grouped = grouped and not wrote()
    new_token, new_row = new_refresh_token(rt, grant.id) if grouped else (None, None)

    def rotate() -> None:
        try:
            if new_row is not None:
                rotated = rotate_in_group(rt, row_id, grant.id, new_row)
            else:
                rotated = consume_refresh_token(rt, row_id, grant.id, ip,
                                                revoke_on_reuse=revoke_on_reuse)
        except RefreshTokenReuseError:
            raise InvalidGrantError("The refresh token was already used.") from None
        if not rotated:
            raise InvalidGrantError("The refresh token is invalid, expired or revoked.")

    return issue_user_tokens(rt, client, grant, account, scope, True, None, ip=ip,
                             decide=rotate, refresh_token=new_token)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Authlib's refresh token grant: client authentication and the
    request's shape, then :func:`refresh_token_response`."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self):
        self.request.client = self._validate_request_client()
        if not self.request.form.get("refresh_token"):
            raise InvalidRequestError("Missing 'refresh_token' in request.")

    def create_token_response(self):
        token = refresh_token_response(current_runtime(), self.request.client,
                                       self.request.form["refresh_token"],
                                       self.request.payload.scope, client_ip())
        return 200, token, self.TOKEN_RESPONSE_HEADER
