"""The authorization code flow (RFC 6749 §4.1) with PKCE (RFC 7636): codes
are kept in the store hashed and bound to their client, are single use,
and a replay revokes the grant they produced (§10.5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge

from idp.accounts.models import Account
from idp.accounts.service import get_account
from idp.authorizations.models import Grant
from idp.authorizations.service import create_grant, revoke_grant
from idp.extensions import db
from idp.oidc.client_auth import TOKEN_AUTH_METHODS
from idp.oidc.flows.user_tokens import issue_user_tokens, wants_refresh
from idp.oidc.responses import response_mode_response
from idp.runtime import Runtime, current_runtime
from idp.security import keyed_hash, random_token
from idp.sessions import SsoSession, add_client
from idp.timeutil import utcnow
from idp.web import client_ip

CODE_PURPOSE = "authorization_code"


@dataclass
class CodeRecord:
    """What an authorization code stands for, kept in the store under its hash.

    Field names follow Authlib's ``AuthorizationCodeMixin`` accessors.
    """

    client_id: str
    redirect_uri: str | None
    scope: str
    account_id: int
    grant_id: str
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    nonce: str | None = None
    sid: str | None = None
    auth_time: int = 0
    acr: str | None = None
    amr: list[str] = field(default_factory=list)

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass
class LoginContext:
    """The authenticated end-user handed to the authorization grant.

    :ivar account: the account that authenticated.
    :ivar session: the SSO session the authentication lives in.
    :ivar claims: the parsed ``claims`` request parameter, or None.
    :ivar acr: the ``acr`` this login achieved (idp.oidc.authorize.check_acr).
    """

    account: Account
    session: SsoSession
    claims: dict | None = None
    acr: str | None = None


def _code_key(rt: Runtime, client_id: str, code: str) -> str:
    """Store key of ``code`` issued to ``client_id`` (and, with ``:grant``,
    of its replay marker). The client is part of the key, so a code
    presented by another client finds nothing: it is neither used up nor
    taken for a replay that would revoke its owner's grant (RFC 6749
    §4.1.3: the code must have been issued to the authenticated client;
    §10.5)."""
    return "code:" + keyed_hash(rt.token_hmac_key, f"{client_id}\x00{code}", CODE_PURPOSE)


class S256CodeChallenge(CodeChallenge):
    """PKCE (RFC 7636) with S256 only, as RFC 9700 §2.1.1 recommends; the method
    must be named explicitly because the RFC default is ``plain``."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256", redirect_uri=redirect_uri
            )
        if not data.get("code_challenge") and grant.request.client.is_public:
            raise InvalidRequestError(
                "public clients must use PKCE (code_challenge with S256)",
                redirect_uri=redirect_uri,
            )
        return super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: CodeRecord):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: CodeRecord):
        return authorization_code.code_challenge_method


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """Authorization code grant (RFC 6749 §4.1) with single-use hashed codes
    and replay revocation (§4.1.2, §10.5)."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def create_authorization_response(self, redirect_uri: str, grant_user: LoginContext):
        """Issue the code and answer with the requested ``response_mode``;
        the ``iss`` parameter follows RFC 9207."""
        rt = current_runtime()
        payload = self.request.payload
        scope = self.request.scope if hasattr(self.request, "scope") else payload.scope
        scope = self.request.client.get_allowed_scope(scope)
        session = grant_user.session
        grant = create_grant(
            rt, account_id=grant_user.account.id, client_id=self.request.client.client_id,
            scope=scope, claims=grant_user.claims, sid=session.sid,
            auth_time=session.auth_time, acr=grant_user.acr, amr=session.amr,
            nonce=payload.data.get("nonce"), ip=client_ip(),
        )
        code = random_token(32)
        # RFC 6749 §4.1.3: the token request must repeat redirect_uri only if
        # the authorization request carried it.
        record_ = CodeRecord(
            client_id=self.request.client.client_id, redirect_uri=payload.redirect_uri,
            scope=scope,
            account_id=grant_user.account.id, grant_id=grant.id,
            code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method"),
            nonce=payload.data.get("nonce"), sid=session.sid, auth_time=session.auth_time,
            acr=grant_user.acr, amr=session.amr,
        )
        tokens = rt.settings["tokens"]
        key = _code_key(rt, self.request.client.client_id, code)
        rt.store.put(key, asdict(record_), tokens["authorization_code_ttl"])
        rt.store.put(key + ":grant", {"grant_id": grant.id}, tokens["code_reuse_window"])
        add_client(rt.store, session, self.request.client.client_id)
        params = [("code", code)]
        if payload.state:
            params.append(("state", payload.state))
        params.append(("iss", rt.issuer))
        return response_mode_response(redirect_uri, params, payload.data.get("response_mode"))

    def query_authorization_code(self, code: str, client) -> CodeRecord | None:
        """Take the code of ``client`` atomically; a replay by that client
        revokes the grant it produced. Another client's code is not found
        (:func:`_code_key`)."""
        rt = current_runtime()
        if not isinstance(code, str) or len(code) > 256:
            return None
        key = _code_key(rt, client.client_id, code)
        # Read before the take: a replay can revoke the grant only after its
        # own take failed, so after this one succeeded, never before this
        # time, however the threads are scheduled (case O-9).
        taken_at = utcnow()
        data = rt.store.take(key)
        if data is None:
            issued = rt.store.get(key + ":grant")
            if issued is not None:
                revoke_grant(rt, issued["grant_id"], "authorization_code_reuse", client_ip())
            return None
        self.request.code_taken_at = taken_at
        return CodeRecord(**data)

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing to do: the code was taken (deleted) when it was read."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Account | None:
        account = get_account(authorization_code.account_id)
        return account if account is not None and account.may_receive_tokens else None

    def create_token_response(self):
        """Issue the tokens of a redeemed code. A code whose grant was revoked
        after it was issued (consent withdrawn, password reset by SMS, the
        account's ID number released...) is ``invalid_grant`` (RFC 6749
        §5.2), as one of a suspended account is: its tokens would be dead on
        arrival, and its ID token would still sign the user in."""
        rt = current_runtime()
        code: CodeRecord = self.request.authorization_code
        client = self.request.client
        account = self.authenticate_user(code)
        grant = db.session.get(Grant, code.grant_id)
        # A revocation after this request took the code is a concurrent replay
        # of it (case O-9), which must not fail this first redemption; one
        # from before (consent withdrawn, account released...) must.
        if (account is None or grant is None
                or (grant.revoked_at is not None
                    and grant.revoked_at < self.request.code_taken_at)):
            raise InvalidGrantError("The authorization code is no longer valid.")
        # Bounded by the registration at redemption too: a scope removed
        # from it while the code was in flight is not issued.
        scope = client.get_allowed_scope(code.scope)
        token = issue_user_tokens(rt, client, grant, account, scope,
                                  wants_refresh(client, scope), code.nonce)
        db.session.refresh(grant)
        if grant.revoked_at is not None:
            # A concurrent replay of this code revoked the grant (case O-9):
            # this first redemption still answers, but its tokens are dead;
            # renewing the revocation covers the access token just signed.
            revoke_grant(rt, grant.id, "authorization_code_reuse", client_ip())
        return 200, token, self.TOKEN_RESPONSE_HEADER

