"""Kiosk endpoints: the kiosk posts a signed card read (``POST
/kiosk/login``, JSON answers); its browser opens the one-time login URL it
gets back (``GET /kiosk/enter``)."""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, current_app, jsonify, render_template, request
from flask_babel import gettext as _

from idp.authn import service
from idp.authn.blueprint import logged_in_response
from idp.authn.kiosk.service import KioskError, kiosk_login, redeem_ticket
from idp.extensions import csrf
from idp.runtime import current_runtime
from idp.web import client_ip, sso_cookie

bp = Blueprint("kiosk", __name__, url_prefix="/kiosk")


@bp.post("/login")
@csrf.exempt
def login():
    """A kiosk (``private_key_jwt``) posts ``card_read``; the answer holds
    the one-time ``login_url`` for its browser."""
    rt = current_runtime()
    server = current_app.extensions["authlib.server"]
    try:
        client = server.authenticate_client(server.create_oauth2_request(None),
                                            ["private_key_jwt"], "kiosk")
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    try:
        ticket = kiosk_login(rt, client, request.form.get("card_read", ""), client_ip())
    except KioskError as exc:
        response = jsonify(error=exc.error, error_description=exc.description)
        response.status_code = exc.status
    else:
        response = jsonify(login_url=f"{rt.issuer}/kiosk/enter?ticket={ticket.value}",
                           expires_in=ticket.expires_in, acr=ticket.acr, amr=["hwk"])
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/enter")
def enter():
    """The kiosk's browser redeems its ticket: a short SSO session starts,
    always a public computer's (it ends with the browser, and when idle)."""
    rt = current_runtime()
    redeemed = redeem_ticket(rt, request.args.get("ticket"))
    if redeemed is None:
        return render_template(
            "error.html", error="invalid_ticket",
            description=_("This sign-in link was used or has expired. Read the card again.")
        ), 400
    account, data = redeemed
    outcome = service.complete_login(
        rt, account, ["hwk"], client_ip(), sso_cookie(rt), rt.settings["kiosk"]["session_ttl"],
        public=True, via="kiosk", kiosk=data["client_id"], card_type=data["card_type"])
    return logged_in_response(rt, None, outcome)
