"""Kiosk endpoints: the kiosk posts a signed card read (``POST
/kiosk/login``, JSON answers); its browser opens the one-time login URL it
gets back (``GET /kiosk/enter``), or, for a card no account proved
possession of, the link page (``/kiosk/link``), from which the person signs
in and links the card (``/account/link-card``)."""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from idp.authn import service
from idp.authn.forms import Form
from idp.authn.kiosk import LINK_SESSION_KEY
from idp.authn.kiosk.service import (
    KioskError,
    begin_link,
    cancel_link,
    kiosk_login,
    pending_link,
    redeem_ticket,
)
from idp.authn.pages import logged_in_response
from idp.extensions import csrf
from idp.runtime import current_runtime
from idp.web import clear_sso_cookie, client_ip, current_sso, sso_cookie

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
        if ticket.linked:
            response = jsonify(login_url=f"{rt.issuer}/kiosk/enter?ticket={ticket.value}",
                               expires_in=ticket.expires_in, acr=ticket.acr, amr=["hwk"],
                               linked=True)
        else:
            response = jsonify(login_url=f"{rt.issuer}/kiosk/link?ticket={ticket.value}",
                               expires_in=ticket.expires_in, linked=False)
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
    # A kiosk is a public machine: its browser is never remembered as known.
    return logged_in_response(rt, None, outcome, remember_device=False)


@bp.route("/link", methods=["GET", "POST"])
def link():
    """A card no account proved possession of: the kiosk's browser redeems
    its ticket (then comes back without it in the URL), and the page offers
    to sign in or register there, then to read the card again; read again
    after a sign-in, the card goes to the confirmation in the account
    console. ``action=cancel`` forgets the card."""
    rt = current_runtime()
    ticket = request.args.get("ticket")
    if request.method == "GET" and ticket is not None:
        sso, account = current_sso(rt)
        begun = begin_link(rt, ticket, sso_cookie(rt), session.get(LINK_SESSION_KEY),
                           sso if account is not None else None)
        if begun is None:
            return render_template(
                "error.html", error="invalid_ticket",
                description=_("This sign-in link was used or has expired. Read the card again.")
            ), 400
        session[LINK_SESSION_KEY], presented = begun
        if presented:
            return redirect(url_for("portal.link_card"), 303)
        response = redirect(url_for("kiosk.link"), 303)
        clear_sso_cookie(rt, response)
        return response
    form = Form()
    if form.validate_on_submit():
        cancel_link(rt, session.pop(LINK_SESSION_KEY, None))
        return redirect(url_for("authn.home"), 303)
    card = pending_link(rt, session.get(LINK_SESSION_KEY))
    if card is None:
        session.pop(LINK_SESSION_KEY, None)
        return render_template(
            "error.html", error="no_card",
            description=_("No card is waiting to be linked here. Read the card at the kiosk "
                          "again.")), 400
    return render_template("kiosk_link.html", card=card, form=form), (
        400 if request.method == "POST" else 200)
