"""The request Authlib sees at the token, revocation and introspection
endpoints: its URI under the configured issuer, its parameters from the
form-encoded body only (RFC 6749 §3.2)."""

from __future__ import annotations

from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError

#: Parameters of the token, revocation and introspection endpoints (RFC 6749
#: §2.3.1, §4.1.3, §4.4.2, §6; RFC 7636 §4.5; RFC 7523 §2.2; RFC 7009 §2.1;
#: RFC 7662 §2.1). They are read from the form-encoded body only, and a
#: request naming one in its URL is refused (:func:`check_body_parameters`).
BODY_PARAMETERS = frozenset({
    "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope",
    "client_id", "client_secret", "client_assertion", "client_assertion_type", "token",
    "token_type_hint",
})


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
