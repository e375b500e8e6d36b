"""HTTP endpoints of the protocol: parse, call services, render. No rules here."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
)

from idp import single_logout
from idp.extensions import csrf
from idp.i18n import remember_ui_locales
from idp.oidc import client_auth, interaction, logout, resources
from idp.oidc.authorize import AuthorizationRequest, decide, known_parameters
from idp.oidc.client_auth import TOKEN_AUTH_METHODS
from idp.oidc.endpoint_request import EndpointRequest
from idp.oidc.flows.authorization_code import LoginContext
from idp.oidc.responses import STEP_PAGES, ask_user, authorization_error, expired_page
from idp.oidc.tokens import InvalidTokenError
from idp.runtime import current_runtime
from idp.sessions import load_session
from idp.timeutil import utcnow
from idp.web import (
    allow_form_target,
    allow_frames,
    browser_id,
    clear_sso_cookie,
    client_ip,
    current_sso,
    sso_cookie,
)

bp = Blueprint("oidc", __name__)

#: Request headers a browser app sends to the token, userinfo, revocation and
#: introspection endpoints (Fetch standard, CORS-preflight request).
CORS_REQUEST_HEADERS = "Authorization, Content-Type"
#: Request headers a page may send when it fetches discovery or the JWKS.
PUBLIC_REQUEST_HEADERS = "Accept, Cache-Control, If-None-Match"
#: Seconds a browser may cache a preflight answer.
CORS_MAX_AGE = 600


def _server():
    return current_app.extensions["authlib.server"]


def _cached(body: bytes, etag: str, max_age: int) -> Response:
    if request.if_none_match.contains_weak(etag.strip('"')):
        response = Response(status=304)
    else:
        response = Response(body, mimetype="application/json")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _preflight(methods: tuple[str, ...], allow_origin: str | None, headers: str) -> Response:
    """Answer an OPTIONS request; for a CORS preflight (Fetch standard
    §3.2.2, §4.8) the grant is sent only with an ``allow_origin`` and when
    the method asked for is one of ``methods``, so the browser stops any
    other request."""
    response = Response(status=204)
    response.headers["Allow"] = ", ".join((*methods, "OPTIONS"))
    if allow_origin and request.headers.get("Access-Control-Request-Method") in methods:
        response.headers["Access-Control-Allow-Origin"] = allow_origin
        response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
        response.headers["Access-Control-Allow-Headers"] = headers
        response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE)
    return response


def _client_preflight(*methods: str) -> Response:
    """Preflight of an endpoint for browser apps: it names no client, so it
    is granted to an origin that some client registered; the request that
    follows is checked against its own client (:func:`_allow_origin`)."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in current_runtime().clients.allowed_origins()
    response = _preflight(methods, origin if allowed else None, CORS_REQUEST_HEADERS)
    response.vary.add("Origin")
    return response


def _allow_origin(response: Response, client) -> Response:
    """Let the browser app at ``Origin`` read this answer (error answers
    included) if ``client`` registered that origin; otherwise it gets no
    CORS header and the browser withholds the answer."""
    origin = request.headers.get("Origin")
    if origin and client is not None and origin in client.allowed_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
        response.vary.add("Origin")
    return response


def _client_concerned(req):
    """The client an answer of the token, revocation or introspection
    endpoint is for: the authenticated one, else the registered one the
    request names (so a browser app can read its own ``invalid_client``)."""
    if req.client is not None:
        return req.client
    client_id = client_auth.named_client_id(req)
    return current_runtime().clients.get(client_id) if client_id else None


@bp.route("/.well-known/openid-configuration", methods=["GET", "OPTIONS"])
@bp.route("/.well-known/oauth-authorization-server", methods=["GET", "OPTIONS"])
def discovery():
    """Discovery (OIDC Discovery 1.0 §4, RFC 8414 §3): public, any origin."""
    if request.method == "OPTIONS":
        return _preflight(("GET",), "*" if "Origin" in request.headers else None,
                          PUBLIC_REQUEST_HEADERS)
    body, etag = current_app.extensions["idp.discovery"]
    return _cached(body, etag, 3600)


@bp.route("/jwks.json", methods=["GET", "OPTIONS"])
def jwks():
    """The provider's public keys (RFC 7517 §5): public, any origin."""
    if request.method == "OPTIONS":
        return _preflight(("GET",), "*" if "Origin" in request.headers else None,
                          PUBLIC_REQUEST_HEADERS)
    body, etag = current_runtime().keys.jwks()
    return _cached(body, etag, 300)


def _run_authorization(args: dict[str, list[str]],
                       item: interaction.Interaction | None = None) -> Response:
    rt = current_runtime()
    # Before anything is read: revocations are compared with this time.
    authorized_at = utcnow()
    req = AuthorizationRequest(args, rt.issuer + "/authorize")
    try:
        try:
            grant = _server().get_consent_grant(request=req)
        except ValueError:
            # Authlib refuses to build an error whose description would echo
            # characters RFC 6749 §4.1.2.1 forbids (quotes, non-ASCII) taken
            # from the redirect_uri or response_type: such a request is
            # invalid, and is answered on a page without echoing them.
            raise InvalidRequestError(
                "The request contains characters that are not allowed.") from None
        client = req.client
        redirect_uri = grant.redirect_uri or req.payload.redirect_uri
        sso, account = current_sso(rt, snapshot=True)
        decision = decide(rt, req, client, redirect_uri, sso, account, item)
    except OAuth2Error as error:
        return authorization_error(error, req)
    if decision.action in STEP_PAGES:
        remember_ui_locales(req.payload.data.get("ui_locales"))
        return ask_user(rt, decision.action, args, item)
    if item is not None and not interaction.finish(rt.store, item):
        return expired_page()
    context = LoginContext(account=account, session=sso, claims=decision.claims,
                           acr=decision.acr, authorized_at=authorized_at, ip=client_ip())
    try:
        return grant.create_authorization_response(redirect_uri, context)
    except OAuth2Error as error:  # beyond the session's rate of codes
        return authorization_error(error, req)


@bp.route("/authorize", methods=["GET", "POST"])
@csrf.exempt
def authorize():
    """Authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2); POST is form-encoded."""
    return _run_authorization(known_parameters(request.values.to_dict(flat=False)))


@bp.get("/authorize/resume")
def resume():
    """Continue a saved authorization request after login or consent."""
    rt = current_runtime()
    item = interaction.load(rt.store, request.args.get("i"), browser_id())
    if item is None:
        return expired_page()
    return _run_authorization(item.args, item)


def _endpoint_request() -> tuple[OAuth2Request | None, Response | None]:
    """The request of a token, revocation or introspection call, or the
    ``invalid_request`` answer when it names a body parameter in its URL
    (RFC 6749 §3.2): ``(request, None)`` or ``(None, error response)``. The
    refusal is readable by the browser app of the client the request names
    (docs/clients.md), like every other error answer of these endpoints."""
    server = _server()
    try:
        return server.create_oauth2_request(None), None
    except OAuth2Error as error:
        response = server.handle_error_response(None, error)
        response.headers["Cache-Control"] = "no-store"
        unchecked = EndpointRequest(request, current_runtime().issuer)
        return None, _allow_origin(response, _client_concerned(unchecked))


@bp.route("/token", methods=["POST", "OPTIONS"])
@csrf.exempt
def token():
    """Token endpoint (RFC 6749 §3.2), open to registered browser apps (CORS)."""
    if request.method == "OPTIONS":
        return _client_preflight("POST")
    server = _server()
    req, refused = _endpoint_request()
    if refused is not None:
        return refused
    response = server.create_token_response(req)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return _allow_origin(response, _client_concerned(req))


def _bearer_error(status: int, error: str | None, description: str = "") -> Response:
    """RFC 6750 §3 error with a ``WWW-Authenticate`` challenge."""
    challenge = 'Bearer realm="idp"'
    body: dict = {}
    if error:
        challenge += f', error="{error}"'
        body = {"error": error}
        if description:
            challenge += f', error_description="{description}"'
            body["error_description"] = description
    response = jsonify(body) if body else Response(status=status)
    response.status_code = status
    response.headers["WWW-Authenticate"] = challenge
    return response


def _presented_bearer() -> str | None:
    """The access token from the header or (POST, form) the body (RFC 6750 §2).

    :raises InvalidRequestError: when sent by more than one method (§2).
    """
    header = request.headers.get("Authorization", "")
    from_header = header[7:].strip() if header[:7].lower() == "bearer " else None
    from_body = None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        from_body = request.form.get("access_token")
    if from_header and from_body:
        raise InvalidRequestError("Send the access token in one place only.")
    return from_header or from_body


@bp.route("/userinfo", methods=["GET", "POST", "OPTIONS"])
@csrf.exempt
def userinfo():
    """UserInfo endpoint (OIDC Core §5.3), open to the browser app the token
    was issued to (CORS), its error answers too."""
    if request.method == "OPTIONS":
        return _client_preflight("GET", "POST")
    rt = current_runtime()
    try:
        value = _presented_bearer()
    except InvalidRequestError as error:
        return _bearer_error(400, "invalid_request", error.description)
    if not value:
        return _bearer_error(401, None)
    try:
        client_id, body = resources.userinfo(rt, value)
    except InvalidTokenError as exc:
        return _allow_origin(_bearer_error(401, "invalid_token", "The access token is invalid."),
                             rt.clients.get(exc.client_id) if exc.client_id else None)
    except resources.InsufficientScopeError as exc:
        return _allow_origin(
            _bearer_error(403, "insufficient_scope", "The token lacks the openid scope."),
            rt.clients.get(exc.client_id) if exc.client_id else None)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return _allow_origin(response, rt.clients.get(client_id))


@bp.route("/revoke", methods=["POST", "OPTIONS"])
@csrf.exempt
def revoke():
    """Token revocation (RFC 7009 §2). Revoking a refresh token revokes its
    whole grant, access tokens included (§2.1). Open to registered browser
    apps (CORS)."""
    if request.method == "OPTIONS":
        return _client_preflight("POST")
    rt = current_runtime()
    server = _server()
    req, refused = _endpoint_request()
    if refused is not None:
        return refused
    try:
        client = server.authenticate_client(req, TOKEN_AUTH_METHODS, "revocation")
    except OAuth2Error as error:
        return _allow_origin(server.handle_error_response(None, error), _client_concerned(req))
    value = request.form.get("token")
    if not value:
        return _allow_origin(
            server.handle_error_response(None, InvalidRequestError("Missing 'token'.")), client)
    resources.revoke(rt, client.client_id, value, request.form.get("token_type_hint"),
                     client_ip())
    return _allow_origin(Response("", status=200, headers={"Cache-Control": "no-store"}),
                         client)


@bp.route("/introspect", methods=["POST", "OPTIONS"])
@csrf.exempt
def introspect():
    """Token introspection for confidential clients (RFC 7662 §2), open to
    registered browser apps (CORS)."""
    if request.method == "OPTIONS":
        return _client_preflight("POST")
    rt = current_runtime()
    server = _server()
    req, refused = _endpoint_request()
    if refused is not None:
        return refused
    try:
        client = server.authenticate_client(
            req, [m for m in TOKEN_AUTH_METHODS if m != "none"], "introspection")
    except OAuth2Error as error:
        return _allow_origin(server.handle_error_response(None, error), _client_concerned(req))
    value = request.form.get("token")
    if not value:
        return _allow_origin(
            server.handle_error_response(None, InvalidRequestError("Missing 'token'.")), client)
    body = resources.introspect(rt, client.client_id, value, client_ip(),
                                resource_server=client.resource_server)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return _allow_origin(response, client)


@bp.route("/logout", methods=["GET", "POST"])
@csrf.exempt
def end_session_endpoint():
    """RP-Initiated Logout 1.0 §2: end the SSO session, then return to a
    registered ``post_logout_redirect_uri`` only (the rules:
    :mod:`idp.oidc.logout`)."""
    rt = current_runtime()
    params = request.values
    try:
        checked = logout.check_request(rt, params)
    except logout.LogoutRequestError as error:
        return Response(render_template("error.html", error="invalid_request",
                                        description=error.description), status=400)
    sso = load_session(rt.store, sso_cookie(rt))
    # RPs may POST logout requests (RP-Initiated Logout §2) without our CSRF
    # token; only the user's own confirmation carries and needs one.
    confirmed = request.method == "POST" and request.form.get("confirm") == "yes"
    if confirmed:
        csrf.protect()
    if logout.needs_confirmation(rt, checked, sso, confirmed):
        allow_form_target(checked.target)
        return render_template("logout_confirm.html", params=params,
                               client_name=checked.client.name if checked.client else None)
    frames: list[str] = []
    if sso is not None:
        frames = single_logout.frontchannel_uris(rt, sso)
        logout.end(rt, sso, checked.client_id, client_ip())
    if frames:
        # Front-Channel Logout 1.0 §2: the relying parties' pages load in
        # hidden frames here, then the browser goes on to the target.
        allow_frames(frames)
        response = Response(render_template("logged_out.html", client=checked.client,
                                            frames=frames, target=checked.target))
    elif checked.target:
        response = redirect(checked.target)
    else:
        response = Response(render_template("logged_out.html", client=checked.client))
    clear_sso_cookie(rt, response)
    return response
