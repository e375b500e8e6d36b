"""Discovery and the JWKS answered before the framework.

Relying parties fetch both documents on every start and often on every
token they check; each is the same bytes for everyone until the provider's
settings or keys change. Going through Flask (request context, session,
CSRF, routing, the unit of work, header objects) cost about ten times the
answer itself, so :class:`PublicDocuments` answers ``GET`` and ``HEAD`` of
their paths in the WSGI layer with headers built once; everything else
(``OPTIONS`` preflights, other methods and paths) goes on to Flask, whose
views answer the same paths identically (``idp.oidc.blueprint``; a test
holds the two equal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import parse_etags

from idp.rsgi_bridge import Answer, WSGIApp, serve_before
from idp.web import static_security_headers

#: Paths answered here -> seconds a cache may keep the answer.
DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
JWKS_PATH = "/jwks.json"
DISCOVERY_MAX_AGE = 3600
JWKS_MAX_AGE = 300
#: Valid ``Host`` values remembered, so each is checked once (a client
#: sending ever new names only costs the check).
MAX_REMEMBERED_HOSTS = 64


class HostCheck:
    """Whether Werkzeug would bind a URL map to a request's ``Host`` (its
    IDNA encoding succeeds: no empty label, none over 63 characters); Flask
    answers the others with its 400 page, so the answers given before Flask
    leave those requests to it. Up to :data:`MAX_REMEMBERED_HOSTS` good
    values are remembered, each checked once."""

    def __init__(self) -> None:
        self._hosts: set[str] = set()

    def plausible(self, environ: dict[str, Any]) -> bool:
        """:returns: True when Flask would route a request with ``environ``'s host."""
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if host in self._hosts:
            return True
        try:
            host.lower().partition(":")[0].encode("idna")
        except UnicodeError:
            return False
        if len(self._hosts) < MAX_REMEMBERED_HOSTS:
            self._hosts.add(host)
        return True


class PublicDocuments:
    """WSGI middleware: discovery (OIDC Discovery 1.0 §4, RFC 8414 §3) and
    the JWKS (RFC 7517 §5) with the same status, body and headers as the
    Flask views, including a 304 for a matching ``If-None-Match`` (RFC 9110
    §13.1.2, weak comparison).

    :param app: the provider, whose runtime holds the key ring and whose
        ``idp.discovery`` extension holds the serialised metadata.
    :param downstream: the WSGI application everything else goes to.
    """

    def __init__(self, app: Flask, downstream: WSGIApp) -> None:
        self._app = app
        self._downstream = downstream
        runtime = app.extensions["idp"]
        self._keys = runtime.keys
        self._hosts = HostCheck()
        self._security = static_security_headers(runtime.issuer)

    def answer(self, environ: dict[str, Any], *, load: bool = False) -> Answer | None:
        """The answer to ``environ`` when it is a ``GET`` or ``HEAD`` of
        discovery or of the JWKS, as ``(status code, headers, body)``; None
        for anything else. Without ``load`` it reads nothing, so an event
        loop may call it (idp.rsgi_bridge), and a JWKS this process does
        not hold fresh is None too; with ``load`` the keys are reloaded.
        """
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return None
        path = environ.get("PATH_INFO")
        if path not in DISCOVERY_PATHS and path != JWKS_PATH:
            return None
        if not self._hosts.plausible(environ):
            return None
        if path == JWKS_PATH:
            document = self._keys.fresh_jwks()
            if document is None and load:
                with self._app.app_context():
                    document = self._keys.jwks()
            if document is None:
                return None
            max_age = JWKS_MAX_AGE
        else:
            document = self._app.extensions["idp.discovery"]
            max_age = DISCOVERY_MAX_AGE
        body, etag = document
        matched = "HTTP_IF_NONE_MATCH" in environ and parse_etags(
            environ["HTTP_IF_NONE_MATCH"]).contains_weak(etag.strip('"'))
        if matched:
            status, headers, body = 304, [], b""
        else:
            status = 200
            headers = [("Content-Type", "application/json"),
                       ("Content-Length", str(len(body)))]
        headers += [("ETag", etag), ("Cache-Control", f"public, max-age={max_age}"),
                    ("Access-Control-Allow-Origin", "*"), *self._security]
        return status, headers, b"" if environ["REQUEST_METHOD"] == "HEAD" else body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any],
                 ) -> Iterable[bytes]:
        return serve_before(self.answer(environ, load=True), self._downstream, environ,
                            start_response)
