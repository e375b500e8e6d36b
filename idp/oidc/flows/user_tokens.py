"""The token response of a grant made by an end-user: what the
authorization code and refresh token flows both issue."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from authlib.oauth2.rfc6749 import scope_to_list

from idp.accounts.models import Account
from idp.accounts.service import phone_for_scope
from idp.accounts.snapshots import AccountSnapshot
from idp.audit.service import record_deferred
from idp.authorizations.refresh_tokens import issue_refresh_token
from idp.oidc.claims import select_claims
from idp.oidc.identity import identity_claims
from idp.oidc.legacy_claims import legacy_claims
from idp.oidc.subjects import client_sid, subject_for
from idp.oidc.tokens import issue_access_token, issue_id_token
from idp.runtime import Runtime
from idp.unit_of_work import after_commit


class UserGrant(Protocol):
    """What the tokens of a grant are made of: a
    :class:`~idp.authorizations.models.Grant` row, or the
    :class:`~idp.authorizations.refresh_tokens.RefreshGrant` a rotation read."""

    id: str
    claims: dict | None
    sid: str | None
    auth_time: int
    acr: str | None
    amr: list


def issue_user_tokens(rt: Runtime, client, grant: UserGrant, account: Account | AccountSnapshot,
                      scope: str, with_refresh: bool, nonce: str | None, *, ip: str | None,
                      decide: Callable[[], None] | None = None,
                      refresh_token: str | None = None) -> dict[str, Any]:
    """Access token, optional refresh token and ID token for a user grant.
    The refresh token is written in the caller's transaction; the
    ``token.issued`` audit event is queued once that commits.

    :param client: the client the tokens are issued to.
    :param grant: the grant the tokens stand for.
    :param account: the end-user of the grant (a row or its snapshot).
    :param scope: the space-separated scope the tokens carry.
    :param with_refresh: whether to issue a refresh token too.
    :param nonce: the authorization request's ``nonce`` for the ID token, or None.
    :param ip: the caller's address, for the audit trail.
    :param decide: the write that decides whether the tokens may be given
        (a refresh token's rotation), run once they are signed and before
        anything is stored or audited; what it raises refuses them.
    :param refresh_token: with ``with_refresh``, a refresh token that
        ``decide`` writes; without it one is written here.
    :returns: the token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
    """
    subject = subject_for(rt, client, account)
    sid = client_sid(rt, client, grant.sid)
    access_token, expires_in = issue_access_token(
        rt, client_id=client.client_id, scope=scope, subject=subject,
        grant_id=grant.id, auth_time=grant.auth_time, acr=grant.acr, amr=grant.amr,
        sid=sid,
    )
    token: dict[str, Any] = {
        "access_token": access_token, "token_type": "Bearer", "expires_in": expires_in,
        "scope": scope,
    }
    if "openid" in scope_to_list(scope):
        requested = (grant.claims or {}).get("id_token")
        extra = select_claims(account, scope, requested, by_scope=False,
                              phone_number=phone_for_scope(rt, account, scope))
        extra.update(identity_claims(rt, account, scope, requested, userinfo=False))
        extra.update(legacy_claims(rt, client, account, scope))
        token["id_token"] = issue_id_token(
            rt, client_id=client.client_id, alg=client.alg, subject=subject,
            auth_time=grant.auth_time, nonce=nonce, acr=grant.acr, amr=grant.amr,
            sid=sid, access_token=access_token, extra_claims=extra,
        )
    if decide is not None:
        decide()
    if with_refresh:
        token["refresh_token"] = refresh_token or issue_refresh_token(rt, grant)
    after_commit(functools.partial(
        record_deferred, rt.audit, "token.issued", account_id=account.id,
        client_id=client.client_id, ip=ip, grant_id=grant.id, scope=scope,
        refresh=with_refresh))
    return token


def wants_refresh(client, scope: str) -> bool:
    """Refresh tokens only when ``offline_access`` was granted and the client
    may refresh (OIDC Core §11).

    :returns: True to issue a refresh token.
    """
    return "offline_access" in scope_to_list(scope) and client.check_grant_type("refresh_token")
