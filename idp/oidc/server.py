"""Glue between Authlib's authorization server machinery and our services.

Authlib parses requests and dispatches grants (clients are authenticated by
:mod:`idp.oidc.client_auth`); the grant subclasses here keep codes in the
store (hashed, single use), issue RFC 9068 JWT access tokens, rotate refresh
tokens, and sign ID tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from authlib.common.security import is_secure_transport
from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload
from authlib.oauth2.rfc6749 import OAuth2Request, grants, scope_to_list
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.accounts.models import Account
from idp.accounts.service import get_account, phone_for_scope
from idp.audit.service import record_deferred
from idp.config import ConfigError
from idp.extensions import db
from idp.oidc import client_auth
from idp.oidc import grants as grant_service
from idp.oidc.claims import select_claims
from idp.oidc.identity import identity_claims
from idp.oidc.models import Grant
from idp.oidc.responses import response_mode_response
from idp.oidc.subjects import client_sid, subject_for
from idp.oidc.tokens import ACCEPTED_ALGS, issue_access_token, issue_id_token, sole_audience
from idp.runtime import Runtime, current_runtime
from idp.security import keyed_hash, random_token
from idp.sessions import SsoSession, add_client
from idp.timeutil import epoch, utcnow

CODE_PURPOSE = "authorization_code"
#: Longest accepted lifetime of a client assertion, seconds (RFC 7523 §3 lets
#: the server reject an unreasonably far ``exp``).
MAX_ASSERTION_LIFETIME = 3600
TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
#: Parameters of the token, revocation and introspection endpoints (RFC 6749
#: §2.3.1, §4.1.3, §4.4.2, §6; RFC 7636 §4.5; RFC 7523 §2.2; RFC 7009 §2.1;
#: RFC 7662 §2.1). They are read from the form-encoded body only, and a
#: request naming one in its URL is refused (:func:`check_body_parameters`).
BODY_PARAMETERS = frozenset({
    "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope",
    "client_id", "client_secret", "client_assertion", "client_assertion_type", "token",
    "token_type_hint",
})


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


def _ip() -> str | None:
    from flask import request

    return request.remote_addr


def _code_key(rt: Runtime, client_id: str, code: str) -> str:
    """Store key of ``code`` issued to ``client_id`` (and, with ``:grant``,
    of its replay marker). The client is part of the key, so a code
    presented by another client finds nothing: it is neither used up nor
    taken for a replay that would revoke its owner's grant (RFC 6749
    §4.1.3: the code must have been issued to the authenticated client;
    §10.5)."""
    return "code:" + keyed_hash(rt.token_hmac_key, f"{client_id}\x00{code}", CODE_PURPOSE)


def _issue_tokens(rt: Runtime, client, grant: Grant, account: Account, scope: str,
                  with_refresh: bool, nonce: str | None) -> dict[str, Any]:
    """Access token, optional refresh token and ID token for a user grant."""
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
    if with_refresh:
        token["refresh_token"] = grant_service.issue_refresh_token(rt, grant)
    if "openid" in scope_to_list(scope):
        requested = (grant.claims or {}).get("id_token")
        extra = select_claims(account, scope, requested, by_scope=False,
                              phone_number=phone_for_scope(rt, account, scope))
        extra.update(identity_claims(rt, account, scope, requested, userinfo=False))
        token["id_token"] = issue_id_token(
            rt, client_id=client.client_id, alg=client.alg, subject=subject,
            auth_time=grant.auth_time, nonce=nonce, acr=grant.acr, amr=grant.amr,
            sid=sid, access_token=access_token, extra_claims=extra,
        )
    record_deferred(rt.audit, "token.issued", account_id=account.id,
                    client_id=client.client_id, ip=_ip(), grant_id=grant.id, scope=scope,
                    refresh=with_refresh)
    return token


def _wants_refresh(client, scope: str) -> bool:
    """Refresh tokens only when ``offline_access`` was granted and the client may refresh."""
    return "offline_access" in scope_to_list(scope) and client.check_grant_type("refresh_token")


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
        grant = grant_service.create_grant(
            rt, account_id=grant_user.account.id, client_id=self.request.client.client_id,
            scope=scope, claims=grant_user.claims, sid=session.sid,
            auth_time=session.auth_time, acr=grant_user.acr, amr=session.amr,
            nonce=payload.data.get("nonce"), ip=_ip(),
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
        data = rt.store.take(key)
        if data is None:
            issued = rt.store.get(key + ":grant")
            if issued is not None:
                grant_service.revoke_grant(rt, issued["grant_id"], "authorization_code_reuse",
                                           _ip())
            return None
        self.request.code_taken_at = utcnow()
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
        token = _issue_tokens(rt, client, grant, account, code.scope,
                              _wants_refresh(client, code.scope), code.nonce)
        db.session.refresh(grant)
        if grant.revoked_at is not None:
            # A concurrent replay of this code revoked the grant (case O-9):
            # this first redemption still answers, but its tokens are dead;
            # renewing the revocation covers the access token just signed.
            grant_service.revoke_grant(rt, grant.id, "authorization_code_reuse", _ip())
        return 200, token, self.TOKEN_RESPONSE_HEADER


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh with rotation; reuse of a rotated token revokes the family
    (RFC 9700 §4.14.2). A new ID token keeps ``sub`` and the original
    ``auth_time`` (OIDC Core §12.2) and carries no ``nonce``."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self):
        rt = current_runtime()
        client = self._validate_request_client()
        self.request.client = client
        value = self.request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        try:
            grant = grant_service.use_refresh_token(rt, value, client.client_id, _ip())
        except grant_service.RefreshTokenReuseError:
            raise InvalidGrantError("The refresh token was already used.") from None
        if grant is None:
            raise InvalidGrantError("The refresh token is invalid, expired or revoked.")
        account = get_account(grant.account_id)
        if account is None or not account.may_receive_tokens:
            raise InvalidGrantError("The account cannot receive tokens.")
        scope = self.request.payload.scope
        if scope and not set(scope_to_list(scope)) <= set(scope_to_list(grant.scope)):
            raise InvalidScopeError("The requested scope exceeds the original grant.")
        self.request.grant_record = grant
        self.request.user = account

    def create_token_response(self):
        rt = current_runtime()
        grant: Grant = self.request.grant_record
        scope = self.request.payload.scope or grant.scope
        token = _issue_tokens(rt, self.request.client, grant, self.request.user, scope,
                              True, None)
        return 200, token, self.TOKEN_RESPONSE_HEADER


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
        record_deferred(rt.audit, "token.issued", client_id=client.client_id, ip=_ip(),
                        grant_type="client_credentials", scope=scope)
        token = {"access_token": access_token, "token_type": "Bearer",
                 "expires_in": expires_in}
        if scope:
            token["scope"] = scope
        return 200, token, self.TOKEN_RESPONSE_HEADER


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt`` client authentication (RFC 7523 §2.2, OIDC Core §9).

    Only asymmetric algorithms are accepted; each assertion's ``jti`` is kept
    in the replay cache until the assertion expires.

    The audience (``aud``) must be exactly one of two values, as a string or
    a one-element array: the issuer identifier, which draft-ietf-oauth-rfc7523bis
    makes the one value clients send (and RFC 9126 §2 already recommends),
    or the token endpoint URL, which OIDC Core §9 says clients SHOULD send
    and which most relying-party libraries still send. RFC 7523 §3 only asks
    that ``aud`` *contain* a value identifying the server; an array with any
    other value is refused here, because each other audience could replay
    the assertion to this provider, and because a client that lists several
    servers is the one the rfc7523bis audience-injection attack fools.
    Endpoint-specific values (the revocation or introspection URL) are not
    accepted: the token endpoint or the issuer identifies the provider at
    each of its endpoints.
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        """The accepted audiences: the token endpoint URL and the issuer identifier."""
        issuer = current_runtime().issuer
        return [issuer + "/token", issuer]

    def resolve_client_public_key(self, client) -> KeySet:
        keys = client.public_keys()
        if not keys:
            raise InvalidClientError(description="The client has no registered public keys.")
        return KeySet.import_key_set({"keys": keys})

    def extract_assertion(self, assertion: str):
        """Authlib parses the payload before checking the signature: bound its
        size and nesting so an unauthenticated request cannot exhaust it."""
        if len(assertion) > 8192:
            raise InvalidClientError(description="The client assertion is too large.")
        try:
            return super().extract_assertion(assertion)
        except RecursionError:
            raise InvalidClientError(description="The client assertion is invalid.") from None

    def process_assertion_claims(self, assertion, resolve_key):
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ACCEPTED_ALGS))
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="The client assertion is invalid.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims) -> None:
        """RFC 7523 §3 checks, plus a bounded lifetime (an assertion valid for
        longer than ``MAX_ASSERTION_LIFETIME`` would have to be remembered in
        the replay cache for as long, so it is refused) and a single audience.

        :raises InvalidClientError: on any failed check.
        """
        exp = claims.get("exp")
        if (isinstance(exp, int | float) and not isinstance(exp, bool)
                and exp - epoch() > MAX_ASSERTION_LIFETIME):
            raise InvalidClientError(description="The client assertion lives too long.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise InvalidClientError(description="The client assertion needs a jti of at "
                                                 "most 256 characters.")
        if sole_audience(claims.get("aud")) not in self.get_audiences():
            raise InvalidClientError(description="The client assertion's aud must be the "
                                                 "issuer or the token endpoint URL alone.")
        super().verify_claims(claims)

    def validate_jti(self, claims: dict, jti: str) -> bool:
        rt = current_runtime()
        ttl = max(int(claims["exp"]) - epoch() + self.leeway, 1)
        return rt.store.add(f"jti:client:{claims['sub']}:{jti}", {"seen": True}, ttl)


def check_one_client_auth(request: OAuth2Request) -> None:
    """A client uses one authentication method per request (RFC 6749 §2.3),
    and sends no parameter twice (§3.2).

    :raises InvalidRequestError: on a second method or a repeated parameter.
    """
    form = request.form
    if hasattr(form, "getlist") and any(len(form.getlist(k)) > 1 for k in form):
        raise InvalidRequestError("A parameter is repeated.")
    basic = request.headers.get("Authorization", "")[:6].lower() == "basic "
    methods = int(basic) + int("client_secret" in form) + int("client_assertion" in form)
    if methods > 1:
        raise InvalidRequestError("Use exactly one client authentication method.")


class BodyPayload(FlaskOAuth2Payload):
    """The parameters of a request's form-encoded body only: Authlib's Flask
    payload reads ``request.values``, the query string included."""

    @property
    def data(self):
        return self._request.form


class EndpointRequest(OAuth2Request):
    """A request to the token, revocation or introspection endpoint as Authlib
    sees it.

    Its URI is the endpoint under the configured issuer, never one built
    from the ``Host`` header: Authlib refuses a non-https request URI
    (``InsecureTransportError``), so a forged ``Host: evil.example`` -- or a
    reverse proxy speaking plain http to the provider -- would otherwise
    break every token request, and nothing that names the provider may come
    from a header the client chooses. Its parameters are those of the body
    (:class:`BodyPayload`, RFC 6749 §3.2).

    :param request: the Flask request.
    :param issuer: the configured issuer identifier.
    """

    def __init__(self, request, issuer: str) -> None:
        super().__init__(request.method, issuer + request.path, headers=request.headers)
        self._request = request
        self.payload = BodyPayload(request)

    @property
    def args(self):
        return self._request.args

    @property
    def form(self):
        return self._request.form


def check_body_parameters(query_names) -> None:
    """No parameter of :data:`BODY_PARAMETERS` in the request URL.

    RFC 6749 §3.2 sends token requests form-encoded in the body and §2.3.1
    forbids client credentials in the URI. Such a request is refused rather
    than served with its URL parameters ignored: a code, refresh token or
    secret in a URL is already in the access logs of every proxy on the way,
    and the client must learn that at once (ignoring them would also let the
    request mean something else than the client thinks, e.g. without its
    ``scope``). Other query parameters are ignored (RFC 6749 §3.2).

    :param query_names: the names in the request's query string.
    :raises InvalidRequestError: naming the first offending parameter.
    """
    named = sorted(BODY_PARAMETERS.intersection(query_names))
    if named:
        raise InvalidRequestError(f"Send '{named[0]}' in the form-encoded request body, not "
                                  f"in the URL (RFC 6749 section 3.2).")


def check_issuer_transport(issuer: str) -> None:
    """The issuer must be an https URL, or http on a loopback host only
    (RFC 6749 §3.1, §3.2 require TLS; RFC 8252 §8.3 allows loopback), as
    Authlib checks each request URI built from it.

    :raises ConfigError: otherwise, naming the setting.
    """
    if not is_secure_transport(issuer + "/token"):
        raise ConfigError("setting issuer must be an https URL (http only on a loopback "
                          "address such as 127.0.0.1 or localhost)")


class AuthorizationServer(FlaskAuthorizationServer):
    """Authlib's Flask server bound to our client cache; tokens are persisted
    by the grants themselves, so ``save_token`` does nothing."""

    def __init__(self) -> None:
        super().__init__(query_client=lambda cid: current_runtime().clients.get(cid),
                         save_token=lambda token, request: None)
        self.assertion_auth: PrivateKeyJWT | None = None

    def authenticate_client(self, request, methods, endpoint="token"):
        """One client authentication method per request
        (:func:`check_one_client_auth`), checked against the client's
        registration by :func:`idp.oidc.client_auth.authenticate_client`."""
        check_one_client_auth(request)
        return client_auth.authenticate_client(current_runtime(), request, methods, endpoint,
                                               self.query_client, self.assertion_auth, _ip())

    def get_authorization_grant(self, request):
        """Authlib's grant for the request's ``response_type``, or its refusal
        in a sentence: a missing ``response_type`` is ``invalid_request``, an
        unknown one ``unsupported_response_type`` naming it. Authlib 1.9
        passes its sentence and the response type to
        UnsupportedResponseTypeError in swapped order, so the page read
        "response_type=The response type 'None' is not supported by the
        server. is not supported" and the client got only the value as
        ``error_description``. Sent to the redirect URI Authlib validated,
        if any (RFC 6749 §4.1.2.1).

        :raises ValueError: the response type holds characters an error
            description may not echo (caught by the authorization endpoint).
        """
        try:
            return super().get_authorization_grant(request)
        except UnsupportedResponseTypeError as error:
            response_type = request.payload.response_type
            if not response_type:
                raise InvalidRequestError("response_type is missing",
                                          redirect_uri=error.redirect_uri) from None
            raise OAuth2Error(f"The response type '{response_type}' is not supported.",
                              redirect_uri=error.redirect_uri,
                              error=UnsupportedResponseTypeError.error) from None

    def create_oauth2_request(self, request) -> OAuth2Request:
        """Accept a rebuilt :class:`AuthorizationRequest` as it is; wrap Flask's
        request as an :class:`EndpointRequest` otherwise.

        :raises InvalidRequestError: a body parameter in the URL
            (:func:`check_body_parameters`).
        """
        if isinstance(request, OAuth2Request):
            return request
        from flask import request as flask_request

        check_body_parameters(flask_request.args.keys())
        return EndpointRequest(flask_request, current_runtime().issuer)

    def create_token_response(self, request=None):
        """Authlib's token endpoint, with an error in building the request
        (:meth:`create_oauth2_request`) answered as an error response too."""
        try:
            request = self.create_oauth2_request(request)
        except OAuth2Error as error:
            return self.handle_error_response(None, error)
        return super().create_token_response(request)

    def init_app(self, app, query_client=None, save_token=None):
        """Bind to ``app``; register client authentication and grants.

        :raises ConfigError: an issuer Authlib would refuse (:func:`check_issuer_transport`).
        """
        check_issuer_transport(app.config["IDP"]["issuer"])
        super().init_app(app)
        leeway = app.config["IDP"]["tokens"]["clock_leeway"]
        self.assertion_auth = PrivateKeyJWT(leeway=leeway)
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
