"""Client authentication at the token, revocation and introspection
endpoints (RFC 6749 §2.3, §3.2.1, §5.2; RFC 7523 §2.2; OIDC Core §9).

One method per request decides the client: HTTP Basic, ``client_secret``
in the body, a ``client_assertion`` (``private_key_jwt``), or ``client_id``
alone (``none``, public clients). The method is checked against the
client's registration *before* any secret or assertion is, so the answer
never tells whether a secret would have been right; ``invalid_client`` then
says what the client used and what it is registered for, and every failure
goes to the audit trail without a database commit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import unquote

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.audit.service import record_deferred
from idp.clients.cache import ClientInfo
from idp.clients.metadata import SECRET_AUTH_METHODS
from idp.oidc.tokens import ACCEPTED_ALGS, sole_audience
from idp.runtime import Runtime, current_runtime
from idp.timeutil import epoch

#: ``client_assertion_type`` of ``private_key_jwt`` (RFC 7523 §2.2).
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Longest presented client_id kept in the audit trail of a failure.
AUDITED_ID_LENGTH = 64
#: Longest accepted lifetime of a client assertion, seconds (RFC 7523 §3 lets
#: the server reject an unreasonably far ``exp``).
MAX_ASSERTION_LIFETIME = 3600
#: Client authentication methods of the token endpoint (OIDC Core §9), as
#: discovery advertises them.
TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


class ClientAuthenticationError(InvalidClientError):
    """``invalid_client`` (RFC 6749 §5.2). A request that tried HTTP Basic,
    or sent no credentials at all, and every failure at the introspection
    endpoint (RFC 7662 §2.3) is answered 401 with a ``Basic`` challenge
    (RFC 6749 §5.2, RFC 7235 §3.1, RFC 7617 §2); other failures get 400, so a
    browser never opens its password dialog for a script's request.

    :ivar reason: short cause for the audit trail (``unknown_client``,
        ``method_not_registered``, ``wrong_secret``...).
    :ivar client: the client the request named, if it is registered.
    """

    def __init__(self, description: str, reason: str, *, challenge: bool,
                 client: ClientInfo | None = None) -> None:
        super().__init__(description=description, status_code=401 if challenge else 400)
        self.reason = reason
        self.client = client

    def get_headers(self) -> list[tuple[str, str]]:
        headers = default_json_headers[:]
        if self.status_code == 401:
            # OAuth2Error has refused descriptions with quotes or backslashes.
            headers.append(("WWW-Authenticate", f'Basic realm="idp", error="invalid_client", '
                                                f'error_description="{self.description}"'))
        return headers


def presented_method(request: OAuth2Request) -> str | None:
    """The authentication method a token-endpoint-style request uses, read
    from the ``Authorization`` header and the form body only (RFC 6749
    §2.3.1); :func:`check_one_client_auth` has already
    refused a request with two.

    :returns: ``client_secret_basic``, ``client_secret_post``,
        ``private_key_jwt``, ``none`` (``client_id`` alone) or None (nothing).
    """
    if request.headers.get("Authorization", "")[:6].lower() == "basic ":
        return "client_secret_basic"
    form = request.form
    if "client_secret" in form:
        return "client_secret_post"
    if "client_assertion" in form or "client_assertion_type" in form:
        return "private_key_jwt"
    if form.get("client_id"):
        return "none"
    return None


def basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The ``(client_id, client_secret)`` of an ``Authorization: Basic``
    header (RFC 7617 §2: ``Basic`` and a base64 ``user-id ":" password``,
    each form-urlencoded by the client, RFC 6749 §2.3.1).

    Authlib's ``extract_basic_authorization`` unpacks two values from a
    split on any whitespace and raised ValueError (a 500) for ``Basic``
    followed by nothing but spaces, NBSP or NEL; here the header is taken
    apart by its grammar alone.

    :returns: the pair, or None when the header is not such credentials
        (missing, another scheme, no credentials after the scheme, not
        base64, not UTF-8, no colon, an empty client_id).
    """
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "basic" or not token or not token.isascii():
        return None
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        return None
    return unquote(client_id), unquote(secret)


def named_client_id(request: OAuth2Request) -> str | None:
    """The ``client_id`` a request names, authenticated or not: the HTTP
    Basic user name, else the ``client_id`` form parameter. For CORS on
    error answers only; never a proof of anything."""
    if presented_method(request) == "client_secret_basic":
        credentials = basic_credentials(request.headers)
        return credentials[0] if credentials else None
    return request.form.get("client_id")


def _registered_for(client: ClientInfo) -> str:
    methods = client.accepted_auth_methods
    if len(methods) == 1 and methods[0] in SECRET_AUTH_METHODS:
        return f"{methods[0]} only"
    return " or ".join(methods)


class _Check:
    """The checks of one request, in the order they are made."""

    def __init__(self, request: OAuth2Request, used: str | None, methods: Sequence[str],
                 endpoint: str, query_client: Callable[[str], ClientInfo | None]) -> None:
        self.request = request
        self.used = used
        self.methods = methods
        self.endpoint = endpoint
        self.query_client = query_client
        self.challenge = used in (None, "client_secret_basic") or endpoint == "introspection"
        self.presented_id: str | None = None

    def fail(self, description: str, reason: str,
             client: ClientInfo | None = None) -> ClientAuthenticationError:
        return ClientAuthenticationError(description, reason, challenge=self.challenge,
                                         client=client)

    def registered_client(self, client_id: str | None) -> ClientInfo:
        """The named client, if it exists and its registration accepts the
        method used at this endpoint; no secret or signature is looked at."""
        self.presented_id = client_id if isinstance(client_id, str) else None
        if not client_id:
            raise self.fail(f"Client authentication failed: {self.used} was used without "
                            "a client_id.", "missing_client_id")
        client = self.query_client(client_id)
        if client is None:
            raise self.fail(f"Client authentication failed: unknown client (used "
                            f"{self.used}).", "unknown_client")
        if not client.check_endpoint_auth_method(self.used, self.endpoint):
            raise self.fail(f"Client authentication failed: used {self.used}, registered "
                            f"for {_registered_for(client)}.", "method_not_registered", client)
        if self.used not in self.methods:
            raise self.fail(f"Client authentication failed: the {self.endpoint} endpoint "
                            f"does not accept {self.used}.", "method_not_accepted", client)
        return client

    def secret_client(self) -> ClientInfo:
        """``client_secret_basic`` or ``client_secret_post``: the secret is
        compared (in constant time) only once the method is known to fit."""
        if self.used == "client_secret_basic":
            credentials = basic_credentials(self.request.headers)
            if credentials is None:
                raise self.fail("Client authentication failed: malformed HTTP Basic "
                                "credentials.", "malformed_credentials")
            client_id, secret = credentials
        else:
            client_id = self.request.form.get("client_id")
            secret = self.request.form.get("client_secret")
        client = self.registered_client(client_id)
        if not client.check_client_secret(secret):
            raise self.fail(f"Client authentication failed: wrong client secret (used "
                            f"{self.used}).", "wrong_secret", client)
        return client

    def assertion_client(self, assertion_auth: Callable) -> ClientInfo:
        """``private_key_jwt``: the assertion's ``sub`` names the client,
        whose registration is checked before its keys verify the signature."""
        form = self.request.form
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get(
                "client_assertion"):
            raise self.fail("Client authentication failed: private_key_jwt needs "
                            f"client_assertion_type {ASSERTION_TYPE} and a client_assertion.",
                            "invalid_assertion")
        try:
            client = assertion_auth(self.registered_client, self.request)
        except ClientAuthenticationError:
            raise
        except InvalidClientError as exc:
            raise self.fail(exc.description, "invalid_assertion",
                            getattr(self.request, "client", None)) from None
        if client is None:
            raise self.fail("Client authentication failed: the client assertion is invalid.",
                            "invalid_assertion")
        return client


def authenticate_client(rt: Runtime, request: OAuth2Request, methods: Sequence[str],
                        endpoint: str, query_client: Callable[[str], ClientInfo | None],
                        assertion_auth: Callable, ip: str | None) -> ClientInfo:
    """Authenticate the client of a token, revocation, introspection (or
    kiosk) request.

    :param methods: the methods ``endpoint`` accepts (RFC 8414 §2
        ``*_endpoint_auth_methods_supported``).
    :param endpoint: ``token``, ``revocation``, ``introspection`` or ``kiosk``,
        named in messages and the audit trail.
    :param query_client: client lookup by ``client_id`` (the client cache).
    :param assertion_auth: the ``private_key_jwt`` verifier (Authlib's
        ``JWTBearerClientAssertion`` interface: ``(query_client, request)``).
    :param ip: the caller's address, for the audit trail.
    :returns: the authenticated client; ``request.auth_method`` is set to the
        method used.
    :raises ClientAuthenticationError: ``invalid_client``, after a
        ``client.authentication_failed`` audit event (deferred: no commit).
    """
    used = presented_method(request)
    check = _Check(request, used, methods, endpoint, query_client)
    try:
        if used is None:
            raise check.fail("Client authentication failed: no client credentials were sent.",
                             "no_credentials")
        if used in SECRET_AUTH_METHODS:
            client = check.secret_client()
        elif used == "private_key_jwt":
            client = check.assertion_client(assertion_auth)
        else:
            client = check.registered_client(request.form.get("client_id"))
        named = request.form.get("client_id")
        if named is not None and named != client.client_id:
            raise check.fail("Client authentication failed: client_id does not match the "
                             "credentials.", "client_id_mismatch", client)
    except ClientAuthenticationError as exc:
        known = exc.client.client_id if exc.client is not None else None
        unknown = None if known or not check.presented_id else \
            check.presented_id[:AUDITED_ID_LENGTH]
        record_deferred(rt.audit, "client.authentication_failed", "failure", client_id=known,
                        ip=ip, endpoint=endpoint, method=used, reason=exc.reason,
                        registered=exc.client.token_endpoint_auth_method if exc.client else None,
                        presented_client_id=unknown)
        raise
    request.auth_method = used
    return client


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
