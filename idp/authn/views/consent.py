"""The consent page of the ``authn`` blueprint: the user releases the
requested scopes to the client."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import scope_to_list
from flask import render_template, request
from flask_babel import gettext as _

from idp.authn.forms import ConsentForm
from idp.authn.pages import continue_pending, interaction_expired, pending_login
from idp.authn.views import bp
from idp.oidc import interaction
from idp.oidc.authorize import SENSITIVE_SCOPES
from idp.oidc.responses import interaction_error
from idp.oidc.scopes import SCOPE_DESCRIPTIONS
from idp.runtime import current_runtime
from idp.web import client_ip, pending_redirect_uri, redirect_host


@bp.route("/consent", methods=["GET", "POST"])
def consent():
    """Ask the user to release the requested scopes to the client."""
    rt = current_runtime()
    form = ConsentForm()
    pending = pending_login(rt, form)
    if pending is None:
        return interaction_expired()
    item, account, client = pending.item, pending.account, pending.client
    scope = client.get_allowed_scope(item.arg("scope") or "")
    if form.validate_on_submit():
        if form.account.data != account.subject:
            # Another account logged in after this page was shown: its
            # decision cannot be taken for the one now signed in.
            return render_template(
                "error.html", error="account_changed",
                description=_("You signed in as someone else meanwhile. Return to the "
                              "application and start again.")), 400
        if request.form.get("decision") == "approve":
            interaction.consent_given(rt.store, item, account.id, client.client_id, scope,
                                      client_ip())
            return continue_pending(item)
        return interaction_error(item, interaction.consent_refused(
            rt.store, item, account.id, client, client_ip()))
    form.i.data = item.id
    form.account.data = account.subject
    scopes = [(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in scope_to_list(scope)]
    return render_template("consent.html", form=form, client=client, scopes=scopes,
                           sensitive=SENSITIVE_SCOPES,
                           account=account, item=item,
                           redirect_host=redirect_host(pending_redirect_uri(rt, item)))
