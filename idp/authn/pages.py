"""What the login pages share with each other and with the account console:
the answer to a finished login, and the step of a page that sends an SMS
code. Views of several blueprints (``authn``, ``kiosk``, ``portal``) use
these, so none of them imports another blueprint."""

from __future__ import annotations

from flask import Response, redirect, session, url_for
from flask_babel import gettext as _

from idp.accounts.identifiers import IdentifierError
from idp.authn import otp, service, throttle
from idp.oidc import interaction
from idp.runtime import Runtime
from idp.sessions import SsoSession
from idp.web import (
    client_ip,
    local_next,
    set_device_cookie,
    set_sso_cookie,
)


def continue_pending(item: interaction.Interaction | None,
                     next_url: str | None = None) -> Response:
    """Back to the authorization endpoint to resume the pending request
    ``item``; without one, to ``next_url`` in the account console (see
    :func:`idp.web.local_next`) or the home page."""
    if item is None:
        return redirect(local_next(next_url) or url_for("authn.home"))
    return redirect(url_for("oidc.resume", i=item.id))


def logged_in_response(rt: Runtime, item: interaction.Interaction | None,
                       sso: SsoSession | service.PendingLogin, next_url: str | None = None,
                       *, remember_device: bool = True) -> Response:
    """The answer to a finished first or second factor: set the SSO cookie
    and the device cookie, and continue the pending request ``item`` (or go
    to ``next_url`` in the account console, or home). A login that still
    needs its second factor goes to the TOTP page first. Shared by every
    login method's views.

    :param remember_device: False on a public machine (a kiosk): the
        browser gets no device cookie, also when the second factor follows;
        nor does a session opened as a public computer's.
    """
    if isinstance(sso, service.PendingLogin):
        session["mfa"] = sso.token
        if remember_device:
            session.pop("mfa_public", None)
        else:
            session["mfa_public"] = True
        return redirect(url_for("authn.second_factor", i=item.id if item else None,
                                next=local_next(next_url)))
    session.pop("mfa", None)
    public = session.pop("mfa_public", False)
    if item is not None:
        interaction.login_finished(rt.store, item, sso.auth_time)
    response = continue_pending(item, next_url)
    set_sso_cookie(rt, response, sso)
    # A public computer (the login page's box, a kiosk) is never remembered:
    # the next person there must not inherit this browser's own limits.
    if remember_device and not public and not sso.public:
        set_device_cookie(rt, response, sso)
    return response


def send_code_for_form(rt: Runtime, form, purpose: str,
                       device: throttle.DeviceCookie | None = None,
                       ) -> tuple[bool, str | None, int]:
    """Send an SMS code for ``purpose`` to ``form.phone``; returns ``(sent,
    error, status)`` for a two-step SMS page. A refused resend still counts
    as sent: the code already sent stays valid, so the page must keep its
    code field. A number of a country that may not receive codes is a
    field error; a used-up hourly budget is "busy" (503).

    :param device: the browser's device cookie (``web.device_cookie``) when
        the code will be checked with it too (:func:`service.send_sms_code`).
    """
    try:
        service.send_sms_code(rt, form.phone.data, purpose, client_ip(), device)
    except IdentifierError as exc:
        form.phone.errors.append(exc.message)
        return False, None, 400
    except otp.OtpThrottledError as exc:
        return True, _("Please wait %(seconds)d seconds before asking for another code.",
                       seconds=exc.retry_after), 429
    except otp.SmsBudgetExhaustedError:
        return False, sms_busy(), 503
    except service.SmsUnavailableError:
        return False, _("The text message service is unavailable. Try again later."), 503
    return True, None, 200


def sms_busy() -> str:
    """The message when an hourly budget of text messages is used up."""
    return _("The text message service is busy. Try again later.")
