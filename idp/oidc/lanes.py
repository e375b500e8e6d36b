"""UserInfo, introspection and client-credentials tokens answered before
the framework, when the answer is a success.

Portals call UserInfo and resource servers call introspection on every page
view; services ask for client-credentials tokens as often as theirs expire.
Going through Flask (request context, session, CSRF, babel, routing,
Authlib's request object and dispatch, the unit of work, header objects)
cost as much again as the endpoints' own work, so :class:`ResourceLanes`
answers in the WSGI layer the one request shape that is almost all of their
traffic:

- UserInfo (OIDC Core §5.3): ``GET``, or ``POST`` without a body, with an
  ``Authorization: Bearer`` header (RFC 6750 §2.1) and no query;
- introspection (RFC 7662 §2.1): ``POST`` of a form-encoded body holding
  ``token`` and at most ``token_type_hint``, each once, from a client
  authenticating with HTTP Basic (``client_secret_basic``), and no query;
- the token endpoint's client credentials grant (RFC 6749 §4.4.2): ``POST``
  of a form-encoded body holding ``grant_type=client_credentials`` and at
  most ``scope``, each once, from a client authenticating with HTTP Basic,
  and no query. The grant's rules are the grant's own
  (:func:`idp.oidc.flows.client_credentials.client_credentials_token`);
- the token endpoint's refresh token grant (RFC 6749 §6): the same, with
  ``grant_type=refresh_token``, a ``refresh_token`` and at most ``scope``.
  The rotation's rules are the grant's own
  (:func:`idp.oidc.flows.refresh_token.refresh_token_response`); its
  writes are committed together with the other rotations of the worker
  waiting at that moment (:mod:`idp.db.group_commit`), and a replayed token
  goes on to the view, which revokes its family.

A lane only ever answers a success. Everything else goes on to Flask, whose
views (``idp.oidc.blueprint``) then do the whole work and answer: any other
shape (a token in the body, another authentication method, a preflight, a
query that may hold a NUL), a client that fails authentication (its audit
event is the view's), every failure of the token (RFC 6750 §3 errors) and a
store that cannot be read (503). No lane changes anything before its
answer is decided (the audit event is the last step of each, and a
refresh writes only once nothing can refuse it), so working twice on a
refused request changes nothing but its cost. Tests hold
the answers equal to the views' (``tests/integration/test_resource_lanes.py``).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Flask
from werkzeug.http import parse_options_header

from idp.clients.cache import ClientInfo
from idp.oidc import resources
from idp.oidc.client_auth import basic_credentials
from idp.oidc.flows.client_credentials import client_credentials_token
from idp.oidc.flows.refresh_token import refresh_token_response
from idp.oidc.hop import AUTHORIZATION_PATH
from idp.oidc.public_documents import HostCheck
from idp.oidc.resources import InsufficientScopeError
from idp.oidc.tokens import InvalidTokenError
from idp.rsgi_bridge import Answer, WSGIApp, serve_before
from idp.runtime import Runtime, one_request_context
from idp.store import StoreError
from idp.unit_of_work import unit
from idp.web import static_security_headers

log = logging.getLogger(__name__)

USERINFO_PATH = "/userinfo"
INTROSPECTION_PATH = "/introspect"
TOKEN_PATH = "/token"
FORM_TYPE = "application/x-www-form-urlencoded"
#: Parameters an introspection request answered here may hold (RFC 7662 §2.1).
INTROSPECTION_PARAMETERS = frozenset({"token", "token_type_hint"})
#: Parameters a token request answered here may hold (RFC 6749 §4.4.2, §6).
TOKEN_PARAMETERS = frozenset({"grant_type", "scope", "refresh_token"})
#: Longest body answered here, bytes; a longer one goes to Flask, which
#: bounds bodies for the whole application.
MAX_BODY_BYTES = 8 * 1024

Headers = list[tuple[str, str]]
#: What a lane gives for a request it answers: the body, the headers of its
#: kind, and the client whose registered origins decide CORS.
Answered = tuple[bytes, Headers, "ClientInfo | None"]


class ResourceLanes:
    """WSGI middleware: successful UserInfo (OIDC Core §5.3.2),
    introspection (RFC 7662 §2.2), client-credentials token (RFC 6749
    §4.4.3) and refresh (§6) answers with the status, body and headers of
    the Flask views, CORS included (the token's client, or the
    authenticated client, decides which ``Origin`` may read the answer).

    :param app: the provider (its runtime and JSON settings).
    :param downstream: the WSGI application everything else goes to.
    """

    def __init__(self, app: Flask, downstream: WSGIApp) -> None:
        self._app = app
        self._downstream = downstream
        self._runtime: Runtime = app.extensions["idp"]
        self._hosts = HostCheck()
        self._sort_keys = app.json.sort_keys
        self._ensure_ascii = app.json.ensure_ascii
        self._json_headers = [("Content-Type", "application/json"),
                              ("Cache-Control", "no-store"),
                              *static_security_headers(self._runtime.issuer)]
        # Authlib's token response headers (RFC 6749 §5.1), then the view's.
        self._token_headers = [*self._json_headers, ("Pragma", "no-cache")]
        self._lanes: dict[str, Callable[[dict[str, Any]], Answered | None]] = {
            USERINFO_PATH: self._userinfo, INTROSPECTION_PATH: self._introspection,
            TOKEN_PATH: self._token}

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        """The successful answer to ``environ``, as ``(status code, headers,
        body)``, or None when Flask must answer it. A body read here is put
        back into ``environ`` for Flask."""
        lane = self._lanes.get(environ.get("PATH_INFO"))
        if lane is None or environ.get("QUERY_STRING") or not self._hosts.plausible(environ):
            return None
        if self._app.debug:
            return None  # the views' JSON is indented then
        with one_request_context(self._app):
            try:
                answered = lane(environ)
            except (InvalidTokenError, InsufficientScopeError, OAuth2Error, StoreError):
                return None
            except Exception:
                # The view meets the same fault and answers it (a 500 page
                # without the trace); it is logged here as well, since a
                # fault of a lane alone would otherwise go unseen.
                log.exception("%s before Flask failed; Flask answers", environ["PATH_INFO"])
                return None
        if answered is None:
            return None
        data, kind, client = answered
        headers = [*kind, ("Content-Length", str(len(data)))]
        origin = environ.get("HTTP_ORIGIN")
        if origin and client is not None and origin in client.allowed_origins:
            headers += [("Access-Control-Allow-Origin", origin),
                        ("Access-Control-Expose-Headers", "WWW-Authenticate"),
                        ("Vary", "Origin")]
        return 200, headers, data

    def _jsonify(self, body: dict[str, Any]) -> bytes:
        """``body`` as Flask's ``jsonify`` serialises it (its JSON provider's
        settings, compact, with a final newline)."""
        return json.dumps(body, sort_keys=self._sort_keys, ensure_ascii=self._ensure_ascii,
                          separators=(",", ":")).encode() + b"\n"

    def _basic_client(self, environ: dict[str, Any], endpoint: str,
                      parameters: frozenset[str]) -> tuple[ClientInfo, dict[str, str]] | None:
        """The client of a form-encoded ``POST`` with HTTP Basic credentials
        and the form, when the client is registered, may use
        ``client_secret_basic`` and presented its secret; None otherwise
        (also when the form holds a parameter outside ``parameters``)."""
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        # As Werkzeug reads the media type: other characters Python would
        # strip (NBSP, NEL, ...) make the body no form to the view.
        content_type = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
        credentials = basic_credentials({"Authorization": environ.get("HTTP_AUTHORIZATION")})
        if content_type != FORM_TYPE or credentials is None:
            return None
        form = _read_form(environ, parameters)
        if form is None:
            return None
        client_id, secret = credentials
        client = self._runtime.clients.get(client_id)
        # What the view checks before a secret, then the secret (in
        # constant time); a failure is the view's to answer and audit.
        if (client is None
                or not client.check_endpoint_auth_method("client_secret_basic", endpoint)
                or not client.check_client_secret(secret)):
            return None
        return client, form

    def _userinfo(self, environ: dict[str, Any]) -> Answered | None:
        method = environ.get("REQUEST_METHOD")
        # A body may carry the token too (RFC 6750 §2.2), which the view
        # must refuse; only a POST without one stays here.
        if method != "GET" and (method != "POST" or _body(environ) != b""):
            return None
        header = environ.get("HTTP_AUTHORIZATION", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token:
            return None
        client_id, claims = resources.userinfo(self._runtime, token)
        return self._jsonify(claims), self._json_headers, self._runtime.clients.get(client_id)

    def _introspection(self, environ: dict[str, Any]) -> Answered | None:
        authenticated = self._basic_client(environ, "introspection",
                                           INTROSPECTION_PARAMETERS)
        if authenticated is None or not authenticated[1].get("token"):
            return None
        client, form = authenticated
        body = resources.introspect(self._runtime, client.client_id, form["token"],
                                    environ.get("REMOTE_ADDR"),
                                    resource_server=client.resource_server)
        return self._jsonify(body), self._json_headers, client

    def _token(self, environ: dict[str, Any]) -> Answered | None:
        authenticated = self._basic_client(environ, "token", TOKEN_PARAMETERS)
        if authenticated is None:
            return None
        client, form = authenticated
        grant_type = form.get("grant_type")
        if grant_type is None or not client.check_grant_type(grant_type):
            return None
        ip = environ.get("REMOTE_ADDR")
        if grant_type == "client_credentials" and "refresh_token" not in form:
            token = client_credentials_token(self._runtime, client, form.get("scope"), ip)
        elif grant_type == "refresh_token" and form.get("refresh_token"):
            with unit():
                token = refresh_token_response(self._runtime, client, form["refresh_token"],
                                               form.get("scope"), ip, revoke_on_reuse=False,
                                               grouped=True)
        else:
            return None
        # Serialised as Authlib's Flask server does.
        return json.dumps(token).encode(), self._token_headers, client

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any],
                 ) -> Iterable[bytes]:
        return serve_before(self.answer(environ), self._downstream, environ, start_response)


def on_protocol_threads(environ: dict[str, Any]) -> bool:
    """Whether the request of ``environ`` (a body read whole into an
    ``io.BytesIO``, as :class:`idp.rsgi_bridge.WsgiBridge` gives it) runs
    on the bridge's few protocol threads (``server.protocol_threads``):
    authorization, token, UserInfo and introspection requests, which wait
    on nothing but the CPU, the store and the database. Not a token
    request whose body names a refresh token: its rotation's commit is
    shared by the rotations waiting at that moment (:mod:`idp.db.group_commit`),
    so it gains from the many threads of the main pool (PostgreSQL refresh
    ran 0.20 of the peer on two threads, 0.26 on eight)."""
    path = environ["PATH_INFO"]
    if path == TOKEN_PATH:
        stream = environ["wsgi.input"]
        return isinstance(stream, io.BytesIO) and b"refresh_token" not in stream.getvalue()
    return path in (AUTHORIZATION_PATH, USERINFO_PATH, INTROSPECTION_PATH)


def _body(environ: dict[str, Any]) -> bytes | None:
    """The request body as Werkzeug reads it, put back as ``wsgi.input``;
    None (nothing read) when that cannot be told plainly: a
    ``Transfer-Encoding``, a ``Content-Length`` that is not plain digits
    (Werkzeug reads ``+29`` or ``2_9`` as no body, Python's ``int`` as 29),
    or a body longer than :data:`MAX_BODY_BYTES`. A stream the server marks
    terminated is read whole, as Werkzeug does, whatever the length says."""
    if "HTTP_TRANSFER_ENCODING" in environ:
        return None
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        raw = stream.read(MAX_BODY_BYTES + 1)
        environ["wsgi.input"] = io.BytesIO(raw + stream.read())
        return raw if len(raw) <= MAX_BODY_BYTES else None
    length = environ.get("CONTENT_LENGTH") or "0"
    if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES:
        return None
    raw = stream.read(int(length))
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw if len(raw) == int(length) else None


def _read_form(environ: dict[str, Any], parameters: frozenset[str]) -> dict[str, str] | None:
    """The parameters of a short form-encoded body, each named once, of
    ``parameters`` only, ASCII without NUL; None for any other body. The
    body read is put back as ``wsgi.input``."""
    raw = _body(environ)
    if not raw or not raw.isascii():
        return None
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True,
                          encoding="ascii", errors="strict")
    except (ValueError, UnicodeError):
        return None
    form = dict(pairs)
    if (len(form) != len(pairs) or not form.keys() <= parameters
            or any("\x00" in value for value in form.values())):
        return None
    return form
