"""Authorization responses (RFC 6749 §4.1.2) in the requested response mode,
and authorization errors: to the client, or on a page; and the answers of a
request that needs the user first (the page that asks, or an expired
request's page), shared by the authorization endpoint and the CAS login."""

from __future__ import annotations

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Response, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.urls import iri_to_uri

from idp.oidc.authorize import AuthorizationRequest
from idp.oidc.interaction import Interaction, TooManyInteractionsError
from idp.oidc.interaction import start as start_interaction
from idp.runtime import Runtime, current_runtime
from idp.web import allow_form_target, browser_id, client_ip

#: The headers of :func:`response_mode_response`'s redirect (``query``), as
#: Werkzeug sends them, but for ``Location`` (:func:`query_location`).
QUERY_REDIRECT_HEADERS = (("Content-Type", "text/html; charset=utf-8"),
                          ("Cache-Control", "no-store"), ("Content-Length", "0"))


def query_location(redirect_uri: str, params: list[tuple[str, str]]) -> str:
    """The ``Location`` of a ``query`` response carrying ``params`` (RFC 6749
    §4.1.2), as Werkzeug sends it: an IRI converted to a URI."""
    return iri_to_uri(add_params_to_uri(redirect_uri, params))


def response_mode_response(redirect_uri: str, params: list[tuple[str, str]],
                           mode: str | None) -> Response:
    """Deliver ``params`` to the client: a 302 with a query (``query``; a 303
    when answering a POST, idp.web.see_other_after_post), or an
    auto-submitting HTML form (OAuth 2.0 Form Post Response Mode §2) whose
    values are HTML-escaped, not URL-encoded, so the client receives them
    exactly as sent; its script carries the response's CSP nonce, and its
    ``form-action`` admits the origin of ``redirect_uri`` (validated against
    the client's registration by then). Neither may be cached: they carry a
    code or an error.
    """
    if mode == "form_post":
        allow_form_target(redirect_uri)
        response = Response(render_template("form_post.html", action=redirect_uri,
                                            params=params))
    else:
        response = Response(status=302, headers={
            "Location": query_location(redirect_uri, params)})
    response.headers["Cache-Control"] = "no-store"
    return response


def authorization_error(error: OAuth2Error, req: AuthorizationRequest | None) -> Response:
    """Send an error to the client when its redirect URI is validated; otherwise
    show it on a page and never redirect (RFC 6749 §4.1.2.1, RFC 9700 §4.11)."""
    if not error.redirect_uri:
        return Response(render_template(
            "error.html", error=error.error, description=error.get_error_description()
        ), status=400)
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    state = req.payload.state if req is not None else None
    if state:
        params.append(("state", state))
    params.append(("iss", current_runtime().issuer))
    mode = req.payload.data.get("response_mode") if req is not None else None
    return response_mode_response(error.redirect_uri, params, mode)


def interaction_error(item: Interaction, error: OAuth2Error) -> Response:
    """Send ``error`` (from :func:`idp.oidc.interaction.ended_with_error`) to
    the client of the saved request ``item``, with its ``state`` and in its
    response mode (:func:`authorization_error`)."""
    req = AuthorizationRequest(item.args, current_runtime().issuer + "/authorize")
    return authorization_error(error, req)


#: The page that asks the user for each step a saved request needs
#: (:class:`idp.oidc.authorize.Decision`).
STEP_PAGES = {"login": "authn.login", "change_password": "authn.new_password",
              "step_up": "authn.step_up", "consent": "authn.consent"}


def ask_user(rt: Runtime, action: str, args: dict[str, list[str]],
             item: Interaction | None) -> Response:
    """Send the browser to the page of ``action`` (a key of
    :data:`STEP_PAGES`) for the request ``args``, saved first as an
    interaction unless it is one (``item``); shared by the authorization
    endpoint and the CAS login, whose pages come back through
    :func:`idp.authn.pages.continue_pending`.

    :returns: the redirect, or a 429 page when the client IP started too
        many sign-in requests (:func:`idp.oidc.interaction.start`).
    """
    if item is None:
        try:
            item = start_interaction(rt.store, args, browser_id(), client_ip(),
                                     rt.settings["throttle"], rt.pii)
        except TooManyInteractionsError:
            return Response(render_template(
                "error.html", error="temporarily_unavailable",
                description=_("Too many sign-in requests from your network. "
                              "Try again in a minute.")), status=429)
    return redirect(url_for(STEP_PAGES[action], i=item.id))


def expired_page() -> Response:
    """The page of a saved sign-in request that is gone (expired, taken by
    another tab, or not this browser's)."""
    return Response(render_template(
        "error.html", error="interaction_expired",
        description=_("This sign-in request has expired. Return to the application "
                      "and start again.")), status=400)
