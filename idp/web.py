"""Request-level helpers shared by blueprints: the browser id, the SSO
and device cookies, the client IP, the signed-in account of the page
header, security headers and the redirects that answer a POST. Only views
(and the response builders of idp.oidc.responses) use this module."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, Response, abort, g, jsonify, render_template, request, session
from flask.globals import request_ctx
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_wtf.csrf import CSRFError
from itsdangerous import URLSafeTimedSerializer
from markupsafe import escape
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from idp import sessions, unit_of_work
from idp.accounts.models import Account
from idp.accounts.snapshots import AccountSnapshot
from idp.authn.throttle import (
    PROOF_PHONE,
    PROOF_SECRET,
    DeviceCookie,
    read_device_cookie,
    remember_device,
)
from idp.clients.metadata import redirect_destination
from idp.oidc.interaction import Interaction, answer_uri
from idp.runtime import Runtime, current_runtime
from idp.security import random_token
from idp.sessions import SsoSession
from idp.store import StoreError
from idp.timeutil import epoch

log = logging.getLogger(__name__)


def browser_id() -> str:
    """A random id for this browser kept in the signed Flask session cookie;
    interactions are bound to it so a leaked interaction URL is useless elsewhere."""
    if "bid" not in session:
        session["bid"] = random_token(16)
    return session["bid"]


def client_ip() -> str | None:
    """The client's IP address as the WSGI server saw it (a trusted proxy
    must be configured with ProxyFix to see the real one)."""
    return request.remote_addr


def local_next(value: str | None) -> str | None:
    """``value`` if it is a page of the account console to return to after
    login, else None: a path under ``/account`` only, so the parameter can
    never send the browser elsewhere (no open redirect)."""
    if not value or len(value) > 512 or "\\" in value or "//" in value:
        return None
    if value != "/account" and not value.startswith(("/account/", "/account?")):
        return None
    return value


def too_many_attempts(retry_after: int) -> str:
    """The message of a throttled login or code check: the wait in seconds
    when it is under a minute, else in minutes (rounded up).

    :param retry_after: seconds to wait.
    """
    if retry_after < 60:
        seconds = max(1, retry_after)
        return ngettext("Too many failed attempts. Try again in %(num)d second.",
                        "Too many failed attempts. Try again in %(num)d seconds.", seconds)
    minutes = (retry_after + 59) // 60
    return ngettext("Too many failed attempts. Try again in %(num)d minute.",
                    "Too many failed attempts. Try again in %(num)d minutes.", minutes)


def retry_after_header(retry_after: int) -> dict[str, str]:
    """The ``Retry-After`` header of a 429 answer (RFC 6585 §4, RFC 9110
    §10.2.3); ``retry_after`` in seconds."""
    return {"Retry-After": str(max(1, retry_after))}


def sso_cookie(rt: Runtime) -> str | None:
    """The browser's SSO session cookie value, if it sent one."""
    return request.cookies.get(rt.settings["session"]["cookie_name"])


def current_sso(rt: Runtime, *, snapshot: bool = False,
                ) -> tuple[SsoSession | None, Account | AccountSnapshot | None]:
    """The browser's live SSO session and its account, as
    :func:`idp.sessions.resolve` finds them for its cookie (an ended
    generation counts as none; a public computer's idle clock restarts).
    Resolved once per request: the page header (:func:`signed_in_account`)
    reuses the view's.

    :param snapshot: the account as its read-only snapshot (the protocol's
        authorization endpoint), resolved apart from the account object.
    """
    name = "idp_sso_snapshot" if snapshot else "idp_sso"
    if name not in g:
        setattr(g, name, sessions.resolve(rt, sso_cookie(rt), snapshot=snapshot))
    return g.get(name)


def signed_in_account() -> Account | None:
    """The account signed in in this browser, for the page header's name and
    "Sign out" button (a Jinja global: read only by pages that show the
    header). None on a server error's page, which must not depend on the
    store or the database that may have caused it."""
    if g.get("idp_no_account_bar"):
        return None
    return current_sso(current_runtime())[1]


def set_sso_cookie(rt: Runtime, response: Response, sso: SsoSession) -> None:
    """Attach the SSO session cookie (HttpOnly, SameSite=Lax, Secure in
    production), living as long as the session itself, or, for a public
    computer's session, only until the browser closes (no Max-Age)."""
    settings = rt.settings["session"]
    max_age = None if sso.public else max(sso.expires_at - epoch(), 0)
    response.set_cookie(
        settings["cookie_name"], sso.handle, max_age=max_age,
        httponly=True, samesite="Lax", secure=settings["cookie_secure"], path="/",
    )


def device_cookie(rt: Runtime) -> DeviceCookie:
    """The accounts this browser signed in to before, from its signed device
    cookie (none for an unknown browser or a forged, altered or expired cookie)."""
    settings = rt.settings["throttle"]
    return read_device_cookie(rt.token_hmac_key,
                              request.cookies.get(settings["device_cookie_name"]), settings)


def set_device_cookie(rt: Runtime, response: Response, sso: SsoSession) -> None:
    """After a successful login: attach the device cookie naming the
    session's account, keeping the browser's nonce for it and its other
    accounts (OWASP device cookies; :mod:`idp.authn.throttle`). A login
    that proved the password or an authenticator app makes the browser
    known for guesses at the account's secrets; an SMS code alone (``amr``
    ``sms``), only for codes to its phone. HttpOnly, SameSite=Lax, Secure
    in production, for ``throttle.device_cookie_ttl`` seconds. Never for a
    kiosk or another public computer (the caller checks)."""
    proof = PROOF_SECRET if {"pwd", "otp"} & set(sso.amr) else PROOF_PHONE
    _remember(rt, response, sso.account_id, sso.generation, proof)


def keep_browser_known(rt: Runtime, response: Response, sso: SsoSession,
                       account: Account) -> None:
    """After this browser proved the account's password and second factor
    in the console (a re-authentication, or a change that moved the
    account's session generation on: the password, an authenticator app,
    the phone number): its device cookie names the account's current
    generation, as after a login, so the very browser that made the change
    is not left to wait with the strangers at its next sign-in. Nothing for
    a public computer's session.

    :param sso: the session that made the change (ended or not).
    :param account: its account, with the generation after the change.
    """
    if not sso.public:
        _remember(rt, response, account.id, account.session_generation, PROOF_SECRET)


def _remember(rt: Runtime, response: Response, account_id: int, generation: int,
              proof: str) -> None:
    settings = rt.settings["throttle"]
    value = remember_device(rt.token_hmac_key, device_cookie(rt), account_id, generation,
                            settings, proof=proof)
    response.set_cookie(settings["device_cookie_name"], value,
                        max_age=settings["device_cookie_ttl"], httponly=True, samesite="Lax",
                        secure=rt.settings["session"]["cookie_secure"], path="/")


def clear_sso_cookie(rt: Runtime, response: Response) -> None:
    """Remove the SSO session cookie."""
    settings = rt.settings["session"]
    response.delete_cookie(settings["cookie_name"], path="/", httponly=True, samesite="Lax",
                           secure=settings["cookie_secure"])


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (which carry the CSRF token) with the
    signing serializer built once per application instead of on every
    request: its keys and salt come from the configuration, fixed when the
    application is created."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """The application's serializer, made on first use."""
        made = app.extensions.get("idp.session_serializer")
        if made is None:
            made = app.extensions["idp.session_serializer"] = super().get_signing_serializer(app)
        return made


def reject_unreadable_parameters() -> None:
    """Refuse a request whose parameters contain NUL (no legitimate value
    holds one, and PostgreSQL cannot store one: it would fail as a 500) or
    whose query is not UTF-8 (Werkzeug cannot decode it: a 500 too); a
    browser percent-encodes what it sends."""
    try:
        parameters = (request.args, request.form)
    except UnicodeDecodeError:
        abort(400, "The query is not UTF-8.")
    if any(holds_nul(values) for values in parameters):
        abort(400, "A parameter contains a NUL character.")


def holds_nul(parameters: MultiDict[str, str]) -> bool:
    """Whether a name or a value of ``parameters`` contains NUL, which
    :func:`reject_unreadable_parameters` refuses (and which the answers
    given before Flask leave to it: ``idp.oidc.hop``)."""
    return any("\x00" in key or "\x00" in value for key, value in parameters.items(multi=True))


def csp_nonce() -> str:
    """The nonce of this response's inline scripts (CSP Level 3 §2.3.1
    nonce-source): 128 random bits, made on first use and named in the
    response's ``script-src``; a Jinja global for ``<script nonce=...>``.
    (Inline event handlers such as ``onload=`` cannot carry a nonce.)"""
    if "idp_csp_nonce" not in g:
        g.idp_csp_nonce = random_token(16)
    return g.idp_csp_nonce


_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*\Z")
_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\Z")


def form_action_source(uri: str) -> str | None:
    """The CSP source expression of the origin of ``uri`` (CSP Level 3
    §2.3.1 host-source ``scheme://host[:port]``), or None when ``uri`` has no
    usable scheme. A host that a host-source cannot name (an IPv6 literal,
    such as a native app's ``http://[::1]:port`` loopback, RFC 8252 §7.3) or
    a private-use scheme without a host gives the scheme-source ``scheme:``."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not _SCHEME.match(scheme):
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if host and _HOST.match(host):
        return f"{scheme}://{host}" + (f":{port}" if port else "")
    return f"{scheme}:"


def allow_form_target(uri: str | None) -> None:
    """Let this page's forms reach the origin of ``uri``, a registered and
    validated redirect URI: the form_post response posts there, and pages
    of a pending authorization request end there by redirects after their
    POST, which Chromium and Safari check against ``form-action`` as well
    (w3c/webappsec-csp#8). Every other form target stays ``'self'``."""
    source = form_action_source(uri) if uri else None
    if source is not None:
        g.setdefault("idp_form_targets", []).append(source)


def pending_redirect_uri(rt: Runtime, item: Interaction) -> str | None:
    """Where the pending authorization request ``item`` will be answered
    (:func:`idp.oidc.interaction.answer_uri`)."""
    return answer_uri(item, rt.clients.get(item.arg("client_id") or ""))


def redirect_host(uri: str | None) -> str | None:
    """Where an answer sent to ``uri`` goes, for the user to see: the host of
    an http(s) URI (``housing.example.gov.cn``), the scheme of any other
    (``com.example.app``: a private-use scheme, RFC 8252 §7.1, reaches the
    app that claimed it, whatever host is written after it); see
    :func:`idp.clients.metadata.redirect_destination`."""
    return redirect_destination(uri) if uri else None


def allow_pending_redirect(_sender: Any, template: Any, context: dict[str, Any],
                           **_extra: Any) -> None:
    """``template_rendered`` receiver: a page rendered for a pending
    authorization request (an ``item`` in its context) may end at that
    request's redirect URI (:func:`allow_form_target`)."""
    item = context.get("item")
    if isinstance(item, Interaction):
        allow_form_target(pending_redirect_uri(current_runtime(), item))


def allow_frames(uris: list[str]) -> None:
    """Let this page load exactly ``uris`` in frames (the front-channel
    logout page, Front-Channel Logout 1.0 §2): each becomes a ``frame-src``
    source of its scheme, host, port and path (CSP Level 3 §6.7.2.9
    matches the path exactly; the query is not part of a source). Every
    other frame stays forbidden."""
    sources = g.setdefault("idp_frame_sources", [])
    for uri in uris:
        parts = urlsplit(uri)
        # Registered URIs are validated, but a source must not carry what
        # ends a directive or a source list: a host that is not plain is
        # left out (its frame is then refused, not the page's policy bent).
        if _PLAIN_HOST.fullmatch(parts.netloc):
            # Percent escapes stay as registered (browsers compare paths
            # decoded); what would end a directive or a list is escaped.
            sources.append(f"{parts.scheme}://{parts.netloc}"
                           f"{quote(parts.path or '/', safe='/%:@!$&()*+=-._~')}")


_PLAIN_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


_POLICY = ("default-src 'self'; script-src {scripts}; style-src 'self'; object-src 'none'; "
           "base-uri 'none'; form-action {targets}; frame-ancestors 'none'")
#: The policy of answers that carry no page (protocol endpoints, discovery, JWKS).
STATIC_POLICY = _POLICY.format(scripts="'none'", targets="'self'")


def content_security_policy() -> str:
    """This response's policy (CSP Level 3): nothing inline but scripts with
    this response's nonce (:func:`csp_nonce`), no plugins, no ``<base>``,
    forms to this site and the targets :func:`allow_form_target` named, no
    framing (clickjacking of login and consent pages)."""
    nonce = g.get("idp_csp_nonce")
    extra_targets = g.get("idp_form_targets")
    frames = g.get("idp_frame_sources")
    if nonce is None and not extra_targets and not frames:
        # Protocol endpoints (token, JWKS, discovery) answer with this one.
        return STATIC_POLICY
    scripts = f"'nonce-{nonce}'" if nonce else "'none'"
    targets = " ".join(dict.fromkeys(["'self'", *(extra_targets or ())]))
    policy = _POLICY.format(scripts=scripts, targets=targets)
    if frames:
        policy += "; frame-src " + " ".join(dict.fromkeys(frames))
    return policy


#: HSTS (RFC 6797 §6.1): a year, subdomains included.
HSTS = "max-age=31536000; includeSubDomains"


def static_security_headers(issuer: str) -> list[tuple[str, str]]:
    """The headers :func:`add_security_headers` gives an answer that is not
    a page (no script nonce, no form target), for the answers built before
    Flask (``idp.oidc.public_documents``, ``idp.oidc.lanes``, ``idp.oidc.hop``).

    :param issuer: the configured issuer; with https, HSTS too.
    :returns: ``(name, value)`` pairs.
    """
    headers = [("X-Frame-Options", "DENY"), ("Content-Security-Policy", STATIC_POLICY),
               ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
    if issuer.startswith("https://"):
        headers.append(("Strict-Transport-Security", HSTS))
    return headers


def add_security_headers(response: Response) -> Response:
    """Forbid framing and sniffing, and scripts and form targets outside
    :func:`content_security_policy`; pages are never cached (they carry CSRF
    tokens, codes or personal data). With an https issuer, browsers are told
    to use https only (HSTS); the issuer is configured, never taken from the
    request, so a forged Host header cannot turn it off."""
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if current_runtime().issuer.startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def see_other_after_post(response: Response) -> Response:
    """A redirect answering a POST is a 303 See Other (RFC 9110 §15.4.4),
    never a 302 or 307 that a browser might answer by posting the form again
    to the next URL, an authorization response or a logout target included
    (RFC 9700 §4.12)."""
    if request.method == "POST" and response.status_code in (302, 307):
        response.status_code = 303
    return response


#: Endpoints whose clients are programs: errors there are JSON (RFC 6749 §5.2).
JSON_ENDPOINTS = ("/token", "/userinfo", "/revoke", "/introspect", "/kiosk/login")


def handle_http_error(error: HTTPException) -> tuple[Response | str, int]:
    """Render routing and size errors as JSON on protocol endpoints and as a
    themed page elsewhere; a failed CSRF check explains what to do. A 5xx
    (such as Flask's ``InternalServerError`` for an exception no handler
    took) is :func:`server_error`, keeping its status."""
    status = error.code or 500
    if status >= 500:
        return server_error(status)
    if request.path in JSON_ENDPOINTS:
        return jsonify({"error": "invalid_request",
                        "error_description": error.name}), status
    if not _pages_drawable():
        return _bad_host_page(status, error.name), status
    if isinstance(error, CSRFError):
        description = _("The form has expired or was not sent from this site. "
                        "Go back, reload the page and try again.")
        return render_template("error.html", error="csrf", description=description), status
    return render_template("error.html", error=str(status), description=error.name), status


#: The page of last resort, when even the themed error page cannot be rendered.
_BARE_ERROR_PAGE = ("<!doctype html><title>Error</title><h1>The request cannot be completed</h1>"
                    "<p><code>server_error</code></p>")


def _pages_drawable() -> bool:
    """Whether this request has a URL adapter, without which no themed page
    can be drawn (they link the theme's files with ``url_for``). Flask has
    none when Werkzeug refused to bind the URL map to the request's
    ``Host``: a name with an empty label or a label over 63 characters
    (``BadHost``, RFC 1035 §2.3.4) or an untrusted host (``SecurityError``)."""
    return request_ctx.url_adapter is not None


def _bad_host_page(status: int, title: str) -> Response:
    """A plain page for a request whose ``Host`` names no host this
    provider can be reached at (RFC 9110 §7.2, §15.5.1): nothing in it
    depends on the host, the theme or ``url_for``."""
    text = _("The host name in the address of this request is not valid. Check the "
             "address and try again.")
    return Response(f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>"
                    f"<p>{escape(text)}</p>", status=status, mimetype="text/html")


def server_error(status: int = 500) -> tuple[Response | str, int]:
    """An answer that says nothing of the cause, with HTTP ``status`` (5xx):
    ``{"error": "server_error"}`` on protocol endpoints (RFC 6749 §5.2 has no
    code for it; ``server_error`` is the one of §4.1.2.1), or
    ``temporarily_unavailable`` for a 503; a themed page elsewhere, a bare
    page if the theme itself fails."""
    error = "temporarily_unavailable" if status == 503 else "server_error"
    if request.path in JSON_ENDPOINTS:
        response = jsonify({"error": error})
        response.headers["Cache-Control"] = "no-store"
        return response, status
    description = _("An unexpected error occurred. It has been recorded; "
                    "try again in a moment.")
    if not _pages_drawable():
        return Response(_BARE_ERROR_PAGE, mimetype="text/html"), status
    # The page header reads neither the store nor the database, as either
    # may be what failed.
    g.idp_no_account_bar = True
    try:
        return render_template("error.html", error=error, description=description), status
    except Exception:  # noqa: BLE001 -- the theme failing must not show a trace either
        log.exception("The error page failed to render.")
        return Response(_BARE_ERROR_PAGE, mimetype="text/html"), status


def handle_unexpected_error(error: Exception) -> tuple[Response | str, int]:
    """Answer any exception no view handled with :func:`server_error`, after
    logging its trace here (the client never sees it) and rolling back the
    request's transaction, which may be what failed.

    A :class:`~idp.store.StoreError` (the store unreachable: every check
    that needs it fails closed) is a 503 ``temporarily_unavailable``.

    Registered for ``Exception``, so it runs before Flask would propagate the
    exception (``PROPAGATE_EXCEPTIONS``, debug mode) to a debugger or the
    WSGI server: no configuration shows a trace to the client.
    """
    log.error("Unhandled exception on %s %s", request.method, request.path, exc_info=error)
    unit_of_work.rollback()
    # The store being out (sessions, codes, revocation markers) is an outage
    # the client may wait out: 503 temporarily_unavailable, not a fault.
    return server_error(503 if isinstance(error, StoreError) else 500)
