"""The second step of a login of the ``authn`` blueprint: a code from an
authenticator app (set up here at the first login when required)."""

from __future__ import annotations

from flask import Response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from idp.authn import service, throttle, totp
from idp.authn.forms import TotpForm
from idp.authn.pages import client_of, logged_in_response, pending_interaction
from idp.authn.views import bp
from idp.i18n import local_time
from idp.runtime import current_runtime
from idp.timeutil import from_epoch
from idp.web import (
    client_ip,
    device_cookie,
    local_next,
    retry_after_header,
    sso_cookie,
    too_many_attempts,
)


@bp.route("/login/otp", methods=["GET", "POST"])
def second_factor():
    """The second step of a login for accounts with an authenticator (and
    operators, who must set one up here before their first session)."""
    rt = current_runtime()
    form = TotpForm()
    item = pending_interaction(rt, form)
    token = session.get("mfa")
    account = service.pending_account(rt, token)
    superseded = _("Another sign-in set up an authenticator for this account meanwhile, "
                   "which ended this one. Sign in again and enter a code from it; if it is "
                   "not yours, tell your administrator.")
    if account is None:
        if service.enrolment_superseded(rt, token):
            # Ended like every session by that set-up; the operator must
            # hear of it, not just land on the login page again.
            return render_template("login_otp.html", form=form, item=item, enrolment=None,
                                   blocked=True, error=superseded,
                                   client=client_of(rt, item)), 409
        session.pop("mfa", None)
        return redirect(url_for("authn.login", i=item.id if item else None))
    if request.method == "GET":
        form.i.data = item.id if item else ""
        form.next.data = local_next(request.args.get("next")) or ""
    enrol = not totp.has_totp(account)
    # This sign-in's own set-up; none after an operator's card at a kiosk or
    # phone alone, which must not bind an authenticator, nor while the
    # password proves only the phone (the hold after a reset by SMS code).
    enrolment, held = None, None
    if enrol:
        try:
            enrolment = service.pending_enrolment(rt, token, account)
        except service.EnrolmentHeldError as exc:
            held = exc.until
    blocked = enrol and enrolment is None
    error, status, headers = None, 200, {}
    if blocked:
        error = (_enrolment_held(held) if held is not None
                 else _("Sign in with your password to set up the authenticator."))
        status = 403
    elif form.validate_on_submit():
        recovery = request.form.get("action") == "recovery" and not enrol
        code = (form.recovery_code.data if recovery else form.code.data) or ""
        try:
            if enrol:
                sso, codes = service.enrol_and_finish(rt, token, code, client_ip(),
                                                      sso_cookie(rt), device_cookie(rt))
                response = logged_in_response(rt, item, sso, form.next.data)
                page = Response(render_template(
                    "recovery_codes.html", codes=codes,
                    continue_url=response.headers["Location"]))
                page.headers.setlist("Set-Cookie", response.headers.getlist("Set-Cookie"))
                return page
            sso = service.finish_second_factor(rt, token, code, recovery=recovery,
                                               ip=client_ip(), previous=sso_cookie(rt),
                                               device=device_cookie(rt))
        except throttle.ThrottledError as exc:
            error, status = too_many_attempts(exc.retry_after), 429
            headers = retry_after_header(exc.retry_after)
        except service.EnrolmentHeldError as exc:
            # The hold began (a reset by SMS code) since this page was shown.
            error, status, enrolment, blocked = _enrolment_held(exc.until), 403, None, True
        except service.LoginFailedError:
            error, status = _("The code is wrong."), 401
        except totp.TotpError:
            # Confirmed by another sign-in while this one was confirming.
            error, status, enrolment = superseded, 409, None
        else:
            return logged_in_response(rt, item, sso, form.next.data)
    elif request.method == "POST":
        status = 400
    return render_template("login_otp.html", form=form, item=item, enrolment=enrolment,
                           blocked=blocked, error=error,
                           client=client_of(rt, item)), status, headers


def _enrolment_held(until: int) -> str:
    """Why this sign-in cannot set up the authenticator app its account
    needs during the hold after a password reset by SMS code
    (:class:`service.EnrolmentHeldError`), until when, and what else works."""
    return _("Your password was reset by a text message, which proves only that you hold "
             "that phone: the authenticator app this account needs cannot be set up until "
             "%(until)s. Sign in again then, or visit a service counter with your ID card.",
             until=local_time(from_epoch(until), zone=True))
