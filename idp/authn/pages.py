"""What the login pages share with each other and with the account console:
the pending request a page serves, the answer to a finished login, and the
steps of a page that sends an SMS code. Views of several blueprints
(``authn``, ``kiosk``, ``portal``) use these, so none of them imports
another blueprint; the ``authn`` views' modules share the rest through here
too, so none of them imports another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from idp.accounts import service as accounts
from idp.accounts.identifiers import IdentifierError
from idp.accounts.models import Account
from idp.authn import otp, service, throttle
from idp.authn.kiosk import LINK_SESSION_KEY
from idp.oidc import interaction
from idp.runtime import Runtime, current_runtime
from idp.sessions import SsoSession
from idp.sms_budget import SmsBudgetExhaustedError
from idp.web import (
    browser_id,
    client_ip,
    current_sso,
    device_cookie,
    local_next,
    set_device_cookie,
    set_sso_cookie,
    sso_cookie,
)


def pending_interaction(rt: Runtime, form) -> interaction.Interaction | None:
    """The pending authorization request a page serves: the one whose id is
    the ``i`` of the query or form body, else the form's ``i`` field, if it
    belongs to this browser (:func:`idp.oidc.interaction.load`); None
    otherwise."""
    return interaction.load(rt.store, request.values.get("i") or form.i.data, browser_id())


def client_of(rt: Runtime, item: interaction.Interaction | None) -> object | None:
    """The registered client whose pending request ``item`` is; None without
    one (or when the client is gone)."""
    if item is None:
        return None
    return rt.clients.get(item.arg("client_id") or "")


@dataclass(frozen=True)
class PendingLogin:
    """A pending request served to a signed-in browser (consent, step-up).

    :ivar item: the pending authorization request.
    :ivar sso: the browser's live SSO session.
    :ivar account: its account.
    :ivar client: the registered client of the request.
    """

    item: interaction.Interaction
    sso: SsoSession
    account: Account
    client: Any


def pending_login(rt: Runtime, form) -> PendingLogin | None:
    """What a page that continues a signed-in login serves: the pending
    request (:func:`pending_interaction`), the browser's SSO session and
    account, and the request's client; None when any of them is missing
    (the request expired or is another browser's, nobody is signed in, the
    client is gone), where the page answers :func:`interaction_expired`."""
    item = pending_interaction(rt, form)
    sso, account = current_sso(rt)
    client = client_of(rt, item)
    if item is None or sso is None or account is None or client is None:
        return None
    return PendingLogin(item, sso, account, client)


def interaction_expired() -> tuple[str, int]:
    """The error page (400) for a page whose pending request is gone or not
    this browser's."""
    return render_template(
        "error.html", error="interaction_expired",
        description=_("This sign-in request has expired. Return to the application "
                      "and start again.")), 400


def public_browser(rt: Runtime) -> bool:
    """Whether every login in this browser is a public computer's now (a
    card waits to be linked here, or its current session is a public one:
    :func:`service.public_browser`)."""
    return service.public_browser(rt, sso_cookie(rt), LINK_SESSION_KEY in session)


def fix_public_box(rt: Runtime, form) -> None:
    """When :func:`public_browser`, show the form's "public computer" box
    ticked and fixed, saying why (a ticked box is what the login does)."""
    if public_browser(rt):
        form.public.data = True
        form.public.render_kw = {"disabled": True}
        form.public.description = _(
            "This browser is used as a public computer: you will be signed out when you "
            "close it, or after a while unused. To change this, sign out first.")


def show_account_errors(form, exc: accounts.AccountError) -> None:
    """Show each error of ``exc`` on its field; a field that already says
    what is wrong (a required field left empty) keeps its own message."""
    for name, message in exc.errors:
        field = getattr(form, name)
        if not field.errors:
            field.errors = [message]


def sms_page(form, template: str, purpose: str,
             verify: Callable[[Runtime, Any], Any]):
    """The two steps of an SMS page: send a code for ``purpose``, then
    ``verify`` the form, which returns the new SSO session (or a pending
    login), a response to send, or ``(error, status)`` to show the form
    again with what was typed.

    :returns: a response, or ``(page, status)`` with ``template`` rendered.
    """
    rt = current_runtime()
    item = pending_interaction(rt, form)
    next_field = getattr(form, "next", None)
    if request.method == "GET":
        form.i.data = item.id if item else ""
        if next_field is not None:
            next_field.data = local_next(request.args.get("next")) or ""
    available = rt.registries.sms is not None
    sent, just_sent, error, status = False, False, None, 200
    if available and form.validate_on_submit():
        if request.form.get("action") == "verify":
            sent = True
            outcome = verify(rt, form)
            if isinstance(outcome, Response):
                return outcome
            if isinstance(outcome, SsoSession | service.PendingLogin):
                return logged_in_response(rt, item, outcome,
                                          next_field.data if next_field is not None else None)
            error, status = outcome
        else:
            sent, error, status = send_code_for_form(rt, form, purpose, device_cookie(rt))
            just_sent = sent and error is None
    elif request.method == "POST":
        status = 400
    return render_template(template, form=form, item=item, sent=sent, just_sent=just_sent,
                           error=error, available=available,
                           client=client_of(rt, item)), status


def continue_pending(item: interaction.Interaction | None,
                     next_url: str | None = None) -> Response:
    """Back to the authorization endpoint (or CAS login) to resume the
    pending request ``item``; without one, to ``next_url`` in the account console (see
    :func:`idp.web.local_next`) or the home page."""
    if item is None:
        return redirect(local_next(next_url) or url_for("authn.home"))
    if item.arg("cas_service"):
        return redirect(url_for("cas.resume", i=item.id))
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
    except SmsBudgetExhaustedError:
        return False, sms_busy(), 503
    except service.SmsUnavailableError:
        return False, _("The text message service is unavailable. Try again later."), 503
    return True, None, 200


def sms_busy() -> str:
    """The message when an hourly budget of text messages is used up."""
    return _("The text message service is busy. Try again later.")
