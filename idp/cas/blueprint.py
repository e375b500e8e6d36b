"""The CAS 3.0 endpoints under ``/cas`` (CAS 3.0 §2): views that parse and
render; :mod:`idp.cas.validation` and the OpenID Connect interaction decide.

``/cas/login`` runs the same policy as the authorization endpoint
(:func:`idp.oidc.authorize.decide`) on a request built from the service's
registration: the SSO session, ``renew`` as ``prompt=login``, ``gateway``
as ``prompt=none``, the service's ``min_acr`` (a step-up), its consent
when it is not trusted, a legacy password to replace. What needs the user
is saved as an interaction whose pages come back to ``/cas/login/resume``.
A ticket goes only to a registered service URL; anything else is answered
on a page, never by a redirect.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from idp import sessions, single_logout
from idp.audit.service import record
from idp.cas import release, responses, tickets
from idp.cas.services import find_service
from idp.cas.tickets import Ticket
from idp.cas.validation import CasError, proxy_ticket, validate
from idp.extensions import csrf
from idp.oidc import interaction
from idp.oidc.authorize import AuthorizationRequest, decide
from idp.oidc.responses import STEP_PAGES, ask_user, expired_page
from idp.runtime import current_runtime
from idp.sessions import load_session
from idp.web import (
    allow_frames,
    browser_id,
    clear_sso_cookie,
    client_ip,
    current_sso,
    sso_cookie,
)

bp = Blueprint("cas", __name__, url_prefix="/cas")

def _page(error: str, description: str, status: int) -> Response:
    return Response(render_template("error.html", error=error, description=description),
                    status=status)


def _truthy(value: str | None) -> bool:
    """CAS 3.0 §2.1.1: ``renew`` and ``gateway`` are set by any value but
    ``false`` (clients send ``true``)."""
    return value is not None and value.lower() != "false"


def _with_ticket(service: str, ticket: str | None) -> str:
    if ticket is None:
        return service
    return service + ("&" if urlsplit(service).query else "?") + urlencode({"ticket": ticket})


def _login_args(client, service: str, renew: bool, gateway: bool) -> dict[str, list[str]]:
    """The saved request of a CAS login: what the authorization endpoint's
    policy reads (the client, its registered scopes, the prompt), and the
    service URL, which sends the pages back here (``cas_service``)."""
    # The service stands as the redirect URI, which the policy's checks
    # read; no OpenID Connect answer ever goes there (a CAS service has no
    # redirect URI, so an error is shown on a page).
    args = {"client_id": [client.client_id], "response_type": ["code"],
            "scope": [client.scope], "redirect_uri": [service], "cas_service": [service]}
    if renew:
        args["prompt"] = ["login"]
    elif gateway:
        args["prompt"] = ["none"]
    return args


def _run_login(args: dict[str, list[str]], item: interaction.Interaction | None) -> Response:
    rt = current_runtime()
    service = args["cas_service"][0]
    client = find_service(rt, service)
    if client is None or client.client_id != args["client_id"][0]:
        return _page("invalid_service", _("This application is not registered for sign-in "
                                          "with the provincial account."), 400)
    gateway = (args.get("prompt") or [""])[0] == "none"
    req = AuthorizationRequest(args, rt.issuer + "/cas/login")
    sso, account = current_sso(rt, snapshot=True)
    try:
        decision = decide(rt, req, client, service, sso, account, item)
    except OAuth2Error as error:
        if gateway:
            # CAS 3.0 §2.1.1: gateway never shows a page; no ticket.
            return redirect(service)
        return _page(error.error, error.get_error_description() or "", 400)
    if decision.action in STEP_PAGES:
        return ask_user(rt, decision.action, args, item)
    if item is not None and not interaction.finish(rt.store, item):
        return expired_page()
    new_login = bool(item is not None and item.login_at is not None
                     and sso.auth_time >= item.created)
    if not sessions.add_relying_party(rt.store, sso, client.client_id):
        return _page("login_required", _("This sign-in request has expired. Return to "
                                         "the application and start again."), 400)
    ticket = tickets.issue(rt, Ticket(
        kind="ST", client_id=client.client_id, service=service, account_id=account.id,
        sid=sso.sid, auth_time=sso.auth_time, amr=list(sso.amr), acr=decision.acr,
        new_login=new_login), tickets.SERVICE_TICKET_TTL)
    return redirect(_with_ticket(service, ticket))


@bp.get("/login")
def login() -> Response:
    """CAS 3.0 §2.1: a service ticket for ``service`` from the SSO session,
    after a login when there is none (or ``renew``), never a page under
    ``gateway``. Without ``service``: the provider's own login."""
    rt = current_runtime()
    service = request.args.get("service")
    if not service:
        sso, account = current_sso(rt)
        return redirect(url_for("authn.home" if account is not None else "authn.login"))
    client = find_service(rt, service)
    if client is None:
        return _page("invalid_service", _("This application is not registered for sign-in "
                                          "with the provincial account."), 400)
    args = _login_args(client, service, _truthy(request.args.get("renew")),
                       _truthy(request.args.get("gateway")))
    return _run_login(args, None)


@bp.get("/login/resume")
def resume() -> Response:
    """Continue a CAS login after the login, step-up or consent page."""
    rt = current_runtime()
    item = interaction.load(rt.store, request.args.get("i"), browser_id())
    if item is None or not item.arg("cas_service"):
        return expired_page()
    return _run_login(item.args, item)


def _answer(body: str, content_type: str, status: int = 200) -> Response:
    response = Response(body, status=status, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def _wants_json() -> bool:
    return (request.args.get("format") or "").upper() == "JSON"


def _service_validate(*, proxies_allowed: bool, with_attributes: bool) -> Response:
    rt = current_runtime()
    as_json = _wants_json()
    try:
        done = validate(rt, request.args.get("ticket"), request.args.get("service"),
                        renew=_truthy(request.args.get("renew")),
                        pgt_url=request.args.get("pgtUrl"), proxies_allowed=proxies_allowed,
                        ip=client_ip())
    except CasError as exc:
        return _answer(*responses.failure(exc.code, exc.description, as_json=as_json))
    user = release.cas_user(rt, done.client, done.account)
    attributes = (release.attributes(rt, done.client, done.account, done.ticket)
                  if with_attributes else None)
    return _answer(*responses.success(user, attributes, iou=done.iou,
                                      proxies=done.ticket.proxies, as_json=as_json))


@bp.get("/serviceValidate")
def service_validate() -> Response:
    """CAS 2.0 ``/serviceValidate`` (§2.5): service tickets only. As in CAS
    3.0 servers, it answers with the attributes too (§2.5: a CAS 3.0
    server may), so that CAS 2.0 clients that read them get them."""
    return _service_validate(proxies_allowed=False, with_attributes=True)


@bp.get("/p3/serviceValidate")
def p3_service_validate() -> Response:
    """CAS 3.0 ``/p3/serviceValidate`` (§2.5 with attributes)."""
    return _service_validate(proxies_allowed=False, with_attributes=True)


@bp.get("/proxyValidate")
def proxy_validate() -> Response:
    """``/proxyValidate`` (§2.6): service and proxy tickets, with the proxy chain."""
    return _service_validate(proxies_allowed=True, with_attributes=True)


@bp.get("/p3/proxyValidate")
def p3_proxy_validate() -> Response:
    """CAS 3.0 ``/p3/proxyValidate`` (§2.6 with attributes)."""
    return _service_validate(proxies_allowed=True, with_attributes=True)


@bp.get("/validate")
def validate_cas1() -> Response:
    """CAS 1.0 ``/validate`` (§2.4): ``yes`` and the user, or ``no``."""
    rt = current_runtime()
    try:
        done = validate(rt, request.args.get("ticket"), request.args.get("service"),
                        renew=_truthy(request.args.get("renew")), pgt_url=None,
                        proxies_allowed=False, ip=client_ip())
    except CasError:
        return _answer(responses.cas1(None), "text/plain; charset=utf-8")
    return _answer(responses.cas1(release.cas_user(rt, done.client, done.account)),
                   "text/plain; charset=utf-8")


@bp.get("/proxy")
def proxy() -> Response:
    """``/proxy`` (§2.7): a proxy ticket for ``targetService`` from a
    proxy-granting ticket."""
    rt = current_runtime()
    as_json = _wants_json()
    try:
        value = proxy_ticket(rt, request.args.get("pgt"), request.args.get("targetService"),
                             client_ip())
    except CasError as exc:
        return _answer(*responses.proxy_failure(exc.code, exc.description, as_json=as_json))
    return _answer(*responses.proxy_success(value, as_json=as_json))


@bp.route("/logout", methods=["GET", "POST"])
@csrf.exempt
def logout() -> Response:
    """``/logout`` (§2.3): end the SSO session, which tells every portal of
    it (single logout, CAS and OpenID Connect alike), then go to
    ``service`` (or CAS 2's ``url``) when it is a registered service. A GET, which any page can
    make, asks the user first; the answer is a POST with the CSRF token."""
    rt = current_runtime()
    # CAS 2 clients name the page to return to "url" (CAS 2.0 §2.3.1).
    service = request.values.get("service") or request.values.get("url")
    target = service if service and find_service(rt, service) is not None else None
    sso = load_session(rt.store, sso_cookie(rt))
    if sso is not None and not (request.method == "POST"
                                and request.form.get("confirm") == "yes"):
        return Response(render_template("logout_confirm.html", params={"service": target},
                                        client_name=None, action=url_for("cas.logout")))
    if request.method == "POST":
        csrf.protect()
    frames: list[str] = []
    if sso is not None:
        frames = single_logout.frontchannel_uris(rt, sso)
        sessions.end(rt, sso, "logout", revoke_grants=False, ip=client_ip())
        record("logout", account_id=sso.account_id, ip=client_ip(), sid=sso.sid,
               protocol="cas")
    if frames:
        allow_frames(frames)
        response = Response(render_template("logged_out.html", client=None, frames=frames,
                                            target=target))
    elif target is not None:
        response = redirect(target)
    else:
        response = Response(render_template("logged_out.html", client=None))
    clear_sso_cookie(rt, response)
    return response
