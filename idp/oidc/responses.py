"""Rendering of authorization endpoint errors: to the client, or on a page."""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core.grants.util import create_response_mode_response
from flask import Response, render_template

from idp.oidc.authorize import AuthorizationRequest
from idp.runtime import current_runtime


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
    status, body, headers = create_response_mode_response(
        error.redirect_uri, params, mode if mode in ("query", "form_post") else "query")
    return Response(body, status=status, headers=headers)
