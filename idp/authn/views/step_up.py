"""The step-up page of the ``authn`` blueprint: a login whose level is below
what the client asked for adds a factor here."""

from __future__ import annotations

from flask import render_template, request
from flask_babel import gettext as _

from connectors.identifiers import mask_phone
from idp.accounts import service as accounts
from idp.accounts import verification
from idp.accounts.identifiers import IdentifierError
from idp.authn import otp, service, stepup, throttle
from idp.authn.forms import StepUpForm
from idp.authn.pages import (
    continue_pending,
    interaction_expired,
    pending_login,
    sms_busy,
)
from idp.authn.views import bp
from idp.i18n import local_time
from idp.oidc import interaction
from idp.oidc.authorize import UnmetAuthenticationRequirementsError, step_up_state
from idp.oidc.responses import interaction_error
from idp.runtime import Runtime, current_runtime
from idp.sms_budget import SmsBudgetExhaustedError
from idp.timeutil import from_epoch
from idp.web import client_ip, device_cookie, too_many_attempts


@bp.route("/login/step-up", methods=["GET", "POST"])
def step_up():
    """The client asked for a higher level than this login has: verify the
    identity further (account console), or add a factor here (a code sent
    to the verified phone, or the password), or cancel, which tells the
    client ``unmet_authentication_requirements``."""
    rt = current_runtime()
    form = StepUpForm()
    pending = pending_login(rt, form)
    if pending is None:
        return interaction_expired()
    item, sso, account, client = pending.item, pending.sso, pending.account, pending.client
    state = step_up_state(rt, item, client, account, sso.amr)
    if state.met:
        return continue_pending(item)
    form.i.data = item.id
    action = request.form.get("action")
    error, status, sent = None, 200, False
    if form.validate_on_submit():
        if action == "cancel" or not state.reachable:
            return interaction_error(item, interaction.ended_with_error(
                rt.store, item, client, UnmetAuthenticationRequirementsError))
        device = device_cookie(rt)
        method = {"send_sms": "sms", "sms": "sms", "password": "pwd"}.get(action)
        try:
            if method is not None:
                stepup.check_factor(rt, state, sso, method, client_ip())
            if action == "send_sms":
                service.send_step_up_code(rt, account, client_ip(), device)
                sent = True
            elif action == "sms":
                sent = True
                service.check_step_up_code(rt, account, form.code.data or "", client_ip(),
                                           device)
                stepup.add_factor(rt, sso, "sms", client_ip())
                return continue_pending(item)
            elif action == "password":
                service.confirm_password(rt, account, form.password.data or "", client_ip(),
                                         device)
                stepup.add_factor(rt, sso, "pwd", client_ip())
                return continue_pending(item)
        except stepup.FactorHeldError:
            # The page says why (``held`` below) and offers no factor.
            status = 403
        except service.InvalidCodeError:
            error, status = _("The code is wrong or has expired."), 401
        except service.LoginFailedError:
            error, status = _("The password is incorrect."), 401
        except throttle.ThrottledError as exc:
            error, status = too_many_attempts(exc.retry_after), 429
        except otp.OtpThrottledError as exc:
            error = _("Too many attempts. Try again in %(seconds)d seconds.",
                      seconds=exc.retry_after)
            status = 429
            # A code already sent stays valid: keep its field on the page.
            sent = sent or action == "send_sms"
        except SmsBudgetExhaustedError:
            error, status = sms_busy(), 503
        except IdentifierError as exc:
            error, status = exc.message, 400
        except service.SmsUnavailableError:
            error = _("The text message service is unavailable. Try again later.")
            status = 503
    elif request.method == "POST":
        status = 400
    phone = accounts.phone_number(rt, account) if account.phone_number_verified else None
    options = {
        "verify": "portal.verify_identity" if state.level < 2 or state.reverify
        else "portal.verify_strong",
        "sms": phone is not None and "sms" in state.factors,
        "password": "pwd" in state.factors,
    }
    held = (_held_factor(state.hold_until)
            if state.hold_until is not None and state.needs_factor else None)
    return render_template(
        "step_up.html", form=form, item=item, client=client, state=state, sent=sent,
        error=error, options=options, phone=mask_phone(phone) if phone else None,
        required=_level_label(rt, state.required), achieved=_level_label(rt, state.achieved),
        level_name=_level_label(rt, state.level), held=held), status


def _held_factor(until: int) -> str:
    """Why no factor can be added during the hold after a password reset by
    SMS code (:mod:`idp.authn.stepup`), and until when."""
    return _("Your password was reset by a text message, so your password and a code to "
             "that same phone prove only the phone: until %(until)s neither counts as a "
             "second factor.",
             until=local_time(from_epoch(until), zone=True))


def _level_label(rt: Runtime, level: int) -> str:
    """``L3 (Strongly verified)``: the acr value and the level's name (in
    full-width brackets on Chinese pages)."""
    return _("%(acr)s (%(name)s)", acr=rt.acr.acr_of(level),
             name=verification.level_name(rt, level))
