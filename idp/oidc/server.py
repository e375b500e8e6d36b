"""Authlib's authorization server bound to our services: the client cache,
client authentication (:mod:`idp.oidc.client_auth`), the endpoint request
(:mod:`idp.oidc.endpoint_request`) and the flows of :mod:`idp.oidc.flows`.
"""

from __future__ import annotations

from authlib.common.security import is_secure_transport
from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import (
    InvalidRequestError,
    OAuth2Error,
    UnsupportedResponseTypeError,
)

from idp.config import ConfigError
from idp.oidc import client_auth
from idp.oidc.client_auth import PrivateKeyJWT, check_one_client_auth
from idp.oidc.endpoint_request import EndpointRequest, check_body_parameters
from idp.oidc.flows.authorization_code import AuthorizationCodeGrant, S256CodeChallenge
from idp.oidc.flows.client_credentials import ClientCredentialsGrant
from idp.oidc.flows.refresh_token import RefreshTokenGrant
from idp.runtime import current_runtime
from idp.web import client_ip


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
                                               self.query_client, self.assertion_auth, client_ip())

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
