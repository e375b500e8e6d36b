"""The single sign-on hop answered before the framework, when it issues a
code.

Once a citizen has logged in, every other portal they open sends the
browser to ``/authorize`` and gets a code back at once: the hop is the
provider's most frequent browser request. Through Flask (request context,
its session cookie, routing, the unit of work, the response object and
its hooks) it cost as much again as the hop's own work, so
:class:`SingleSignOnHop` answers in the WSGI layer the one request shape
that is almost all of the hops:

- ``GET /authorize`` without a body, with the SSO session cookie, and with
  the default response mode (``query``);
- whose checks (:func:`idp.oidc.authorize.decide`, the same function the
  view runs, after Authlib's validation of the client, redirect URI,
  response type, scope and PKCE) decide to issue a code: no login, step-up
  or consent to show, no error.

The code is issued by the grant's own
:meth:`~idp.oidc.flows.authorization_code.AuthorizationCodeGrant.issue_code`,
as the view issues it.
Everything else goes on to Flask, which answers it: every refusal (an
error redirected to the client or shown on a page), every page, a
parameter holding NUL, a ``form_post`` response, a store that cannot be
read (503). Nothing is written before a code is decided, but for the
idle clock of a public computer's session (restarted again by the view)
and the count of codes a session asked for when it is past its limit
(counted again by the view); the code itself is stored last, before its
audit event, so a store fault while it is issued leaves neither. Working
twice on a request handed on changes nothing but its cost. Tests hold the
answers equal to the view's (``tests/integration/test_hop_lane.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Flask
from werkzeug.wrappers import Request

from idp import sessions
from idp.oidc.authorize import AuthorizationRequest, decide, known_parameters
from idp.oidc.flows.authorization_code import LoginContext
from idp.oidc.public_documents import HostCheck
from idp.oidc.responses import QUERY_REDIRECT_HEADERS, query_location
from idp.rsgi_bridge import Answer, WSGIApp, serve_before
from idp.runtime import Runtime, one_request_context
from idp.store import StoreError
from idp.timeutil import utcnow
from idp.web import holds_nul, static_security_headers

log = logging.getLogger(__name__)

AUTHORIZATION_PATH = "/authorize"


class SingleSignOnHop:
    """WSGI middleware: the authorization endpoint's code for a browser
    with a live SSO session (RFC 6749 §4.1.2, OIDC Core §3.1.2.5), with the
    status and headers of the Flask view.

    :param app: the provider (its runtime, settings and Authlib server).
    :param downstream: the WSGI application everything else goes to.
    """

    def __init__(self, app: Flask, downstream: WSGIApp) -> None:
        self._app = app
        self._downstream = downstream
        self._runtime: Runtime = app.extensions["idp"]
        self._server = app.extensions["authlib.server"]
        self._hosts = HostCheck()
        self._cookie = self._runtime.settings["session"]["cookie_name"]
        self._endpoint = self._runtime.issuer + AUTHORIZATION_PATH
        self._security = static_security_headers(self._runtime.issuer)

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        """The code-bearing redirect answering ``environ``, as ``(status
        code, headers, body)``, or None when Flask must answer it."""
        if (environ.get("PATH_INFO") != AUTHORIZATION_PATH
                or environ.get("REQUEST_METHOD") != "GET"
                or "HTTP_TRANSFER_ENCODING" in environ
                or environ.get("CONTENT_LENGTH", "") not in ("", "0")
                or self._app.debug or not self._hosts.plausible(environ)):
            return None
        request = Request(environ)
        handle = request.cookies.get(self._cookie)
        if not handle:
            return None
        try:
            # The view refuses these (idp.web.reject_unreadable_parameters).
            if holds_nul(request.args):
                return None
        except UnicodeDecodeError:
            return None
        args = known_parameters(request.args.to_dict(flat=False))
        if args.get("response_mode", ["query"]) != ["query"]:
            return None
        with one_request_context(self._app):
            try:
                return self._issue(args, handle, request.remote_addr)
            except (OAuth2Error, StoreError):
                return None
            except Exception:
                # The view meets the same fault and answers it; logged here
                # as well, since a fault of the hop alone would go unseen.
                log.exception("the authorization before Flask failed; Flask answers")
                return None

    def _issue(self, args: dict[str, list[str]], handle: str, ip: str | None) -> Answer | None:
        rt = self._runtime
        # The view's order (idp.oidc.blueprint._run_authorization), but for
        # one store round trip reading the session and the clients'
        # generation, where the view reads them apart.
        authorized_at = utcnow()
        generation_key = rt.clients.unchecked_generation_key()
        stored = rt.store.get_many([sessions.session_key(handle),
                                    *([generation_key] if generation_key else [])])
        if generation_key:
            rt.clients.follow(stored[1])
        req = AuthorizationRequest(args, self._endpoint)
        try:
            grant = self._server.get_consent_grant(request=req)
        except ValueError:
            return None
        client = req.client
        redirect_uri = grant.redirect_uri or req.payload.redirect_uri
        sso, account = sessions.resolve(rt, handle, snapshot=True, stored=stored[0])
        if sso is None or account is None:
            return None
        decision = decide(rt, req, client, redirect_uri, sso, account, None)
        if decision.action != "issue":
            return None
        params = grant.issue_code(redirect_uri, LoginContext(
            account=account, session=sso, claims=decision.claims, acr=decision.acr,
            authorized_at=authorized_at, ip=ip))
        # The view's redirect (idp.oidc.responses.response_mode_response)
        # without building Werkzeug's response and header objects.
        return 302, [("Location", query_location(redirect_uri, params)),
                     *QUERY_REDIRECT_HEADERS, *self._security], b""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any],
                 ) -> Iterable[bytes]:
        return serve_before(self.answer(environ), self._downstream, environ, start_response)
