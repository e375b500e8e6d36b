"""The page of the ``authn`` blueprint where a password that logged in but
fails today's policy (a legacy one, case M-PW-3) is replaced before the
login goes on."""

from __future__ import annotations

from flask import render_template, request

from idp.accounts import service as accounts
from idp.authn import service
from idp.authn.forms import NewPasswordForm, require_min_length
from idp.authn.pages import continue_pending, pending_interaction
from idp.authn.views import bp
from idp.runtime import current_runtime
from idp.web import (
    client_ip,
    current_sso,
    keep_browser_known,
    set_sso_cookie,
)


@bp.route("/login/new-password", methods=["GET", "POST"])
def new_password():
    """Ask for a new password; then back to the pending request (``i``), or
    to the account console."""
    rt = current_runtime()
    form = require_min_length(NewPasswordForm(), rt.settings["passwords"]["min_length"])
    item = pending_interaction(rt, form)
    sso, account = current_sso(rt)
    if sso is None or account is None or not account.password_change_required:
        return continue_pending(item)
    status = 200
    if form.validate_on_submit():
        try:
            renewed = service.replace_required_password(rt, sso, account, form.password.data,
                                                        client_ip())
        except accounts.AccountError as exc:
            form.password.errors.append(exc.message)
            status = 400
        else:
            response = continue_pending(item)
            set_sso_cookie(rt, response, renewed)
            keep_browser_known(rt, response, renewed, account)
            return response
    elif request.method == "POST":
        status = 400
    form.i.data = item.id if item is not None else ""
    return render_template("new_password.html", form=form), status
