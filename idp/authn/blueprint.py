"""Login, registration and consent pages. Views parse and render; the
decisions are made in the account, throttle and session services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from connectors.identifiers import mask_phone
from idp.accounts import service as accounts
from idp.accounts import verification
from idp.accounts.identifiers import IdentifierError
from idp.authn import otp, service, stepup, throttle, totp
from idp.authn.forms import (
    ConsentForm,
    LoginForm,
    PasswordResetForm,
    RegisterForm,
    SmsLoginForm,
    SmsRegisterForm,
    StepUpForm,
    TotpForm,
    confirmation_differs,
    require_min_length,
)
from idp.authn.kiosk import LINK_SESSION_KEY
from idp.authn.pages import (
    continue_pending,
    logged_in_response,
    send_code_for_form,
    sms_busy,
)
from idp.i18n import local_time
from idp.oidc import interaction
from idp.oidc.authorize import (
    SENSITIVE_SCOPES,
    UnmetAuthenticationRequirementsError,
    step_up_state,
)
from idp.oidc.responses import interaction_error
from idp.oidc.scopes import SCOPE_DESCRIPTIONS
from idp.runtime import Runtime, current_runtime
from idp.sessions import SsoSession
from idp.timeutil import from_epoch
from idp.web import (
    browser_id,
    client_ip,
    current_sso,
    device_cookie,
    local_next,
    pending_redirect_uri,
    redirect_host,
    retry_after_header,
    sso_cookie,
    too_many_attempts,
)

bp = Blueprint("authn", __name__)


def _client_for(item) -> object | None:
    if item is None:
        return None
    return current_runtime().clients.get(item.arg("client_id") or "")


def _expired() -> tuple[str, int]:
    return render_template(
        "error.html", error="interaction_expired",
        description=_("This sign-in request has expired. Return to the application "
                      "and start again.")), 400


@bp.get("/")
def home():
    """The provider's own landing page: who is logged in."""
    rt = current_runtime()
    _sso, account = current_sso(rt)
    return render_template("home.html", account=account)


def _public_browser(rt: Runtime) -> bool:
    """Whether every login in this browser is a public computer's now (a
    card waits to be linked here, or its current session is a public one:
    :func:`service.public_browser`)."""
    return service.public_browser(rt, sso_cookie(rt), LINK_SESSION_KEY in session)


def _fix_public_box(rt: Runtime, form) -> None:
    """When :func:`_public_browser`, show the form's "public computer" box
    ticked and fixed, saying why (a ticked box is what the login does)."""
    if _public_browser(rt):
        form.public.data = True
        form.public.render_kw = {"disabled": True}
        form.public.description = _(
            "This browser is used as a public computer: you will be signed out when you "
            "close it, or after a while unused. To change this, sign out first.")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Password login; the message never reveals whether the account exists."""
    rt = current_runtime()
    form = LoginForm()
    _fix_public_box(rt, form)
    item = interaction.load(rt.store, request.values.get("i") or form.i.data, browser_id())
    if request.method == "GET":
        form.i.data = item.id if item else ""
        form.next.data = local_next(request.args.get("next")) or ""
        if item and item.arg("login_hint"):
            form.username.data = interaction.login_hint(rt.pii, item)
    error, status, headers = None, 200, {}
    if form.validate_on_submit():
        try:
            sso = service.login_with_password(rt, form.username.data, form.password.data,
                                              client_ip(), sso_cookie(rt), device_cookie(rt),
                                              public=form.public.data)
        except throttle.ThrottledError as exc:
            error, status = too_many_attempts(exc.retry_after), 429
            headers = retry_after_header(exc.retry_after)
        except service.LoginFailedError:
            error = _("The username or password is incorrect.")
            status = 401
        else:
            return logged_in_response(rt, item, sso, form.next.data)
    elif request.method == "POST":
        status = 400
    return render_template("login.html", form=form, error=error, client=_client_for(item),
                           item=item, sms=rt.registries.sms is not None), status, headers


def _sms_page(form, template: str, purpose: str,
              verify: Callable[[Runtime, Any], Any]):
    """The two steps of an SMS page: send a code for ``purpose``, then
    ``verify`` the form, which returns the new SSO session (or a pending
    login), a response to send, or ``(error, status)`` to show the form
    again with what was typed."""
    rt = current_runtime()
    item = interaction.load(rt.store, request.values.get("i") or form.i.data, browser_id())
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
                           client=_client_for(item)), status


@bp.route("/login/sms", methods=["GET", "POST"])
def login_sms():
    """Sign in with a code sent by SMS: the number first, then the code. The
    page says the same whether or not the number belongs to an account."""

    def verify(rt: Runtime, form) -> SsoSession | service.PendingLogin | tuple[str | None, int]:
        try:
            return service.login_with_sms(rt, form.phone.data, form.code.data or "",
                                          client_ip(), sso_cookie(rt), device_cookie(rt),
                                          public=form.public.data)
        except service.LoginFailedError:
            return _("The code is wrong or has expired."), 401

    form = SmsLoginForm()
    _fix_public_box(current_runtime(), form)
    return _sms_page(form, "login_sms.html", "login", verify)


def _show_account_errors(form, exc: accounts.AccountError) -> None:
    """Show each error of ``exc`` on its field; a field that already says
    what is wrong (a required field left empty) keeps its own message."""
    for name, message in exc.errors:
        field = getattr(form, name)
        if not field.errors:
            field.errors = [message]


@bp.route("/register/sms", methods=["GET", "POST"])
def register_sms():
    """Registration by mobile number: a code proves the number, then the
    account is created with it (verified) and signed in. Every error of the
    details is shown at once, before the code is used."""

    def verify(rt: Runtime, form) -> SsoSession | tuple[str | None, int]:
        try:
            if confirmation_differs(form):
                service.check_registration(rt, form.username.data or "",
                                           form.password.data or "", name=form.name.data,
                                           email=None, phone=form.phone.data, ip=client_ip())
                return None, 400
            return service.register_with_phone(
                rt, form.phone.data, form.code.data or "", form.username.data or "",
                form.password.data or "", name=form.name.data, ip=client_ip(),
                previous=sso_cookie(rt), device=device_cookie(rt),
                public=_public_browser(rt))
        except service.RegistrationLimitError:
            return _("Too many registrations from your network. Try again later."), 429
        except accounts.AccountError as exc:
            _show_account_errors(form, exc)
            return None, 400
        except service.InvalidCodeError:
            return _("The code is wrong or has expired."), 401

    form = require_min_length(SmsRegisterForm(),
                              current_runtime().settings["passwords"]["min_length"])
    return _sms_page(form, "register_sms.html", "register", verify)


@bp.route("/login/otp", methods=["GET", "POST"])
def second_factor():
    """The second step of a login for accounts with an authenticator (and
    operators, who must set one up here before their first session)."""
    rt = current_runtime()
    form = TotpForm()
    item = interaction.load(rt.store, request.values.get("i") or form.i.data, browser_id())
    token = session.get("mfa")
    account = service.pending_account(rt, token)
    if account is None:
        session.pop("mfa", None)
        return redirect(url_for("authn.login", i=item.id if item else None))
    if request.method == "GET":
        form.i.data = item.id if item else ""
        form.next.data = local_next(request.args.get("next")) or ""
    enrol = not totp.has_totp(account)
    # This sign-in's own set-up; none after an operator's card at a kiosk or
    # phone alone, which must not bind an authenticator.
    enrolment = service.pending_enrolment(rt, token, account)
    superseded = _("Another sign-in set up an authenticator for this account meanwhile. "
                   "Enter a code from it; if it is not yours, tell your administrator.")
    # Set up by another sign-in since this one began: its code is asked now.
    taken = not enrol and enrolment is not None
    if taken:
        enrolment = None
    blocked = enrol and enrolment is None
    error, status, headers = (superseded if taken else None), 200, {}
    if blocked:
        error = _("Sign in with your password to set up the authenticator.")
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
        except service.LoginFailedError:
            error, status = (superseded if taken else _("The code is wrong.")), 401
        except totp.TotpError:
            # Confirmed by another sign-in while this one was confirming.
            error, status, enrolment = superseded, 409, None
        else:
            return logged_in_response(rt, item, sso, form.next.data)
    elif request.method == "POST":
        status = 400
    return render_template("login_otp.html", form=form, item=item, enrolment=enrolment,
                           blocked=blocked, error=error, client=_client_for(item)), status, headers


@bp.route("/password/reset", methods=["GET", "POST"])
def reset_password():
    """A new password by SMS code to the account's verified number. The
    page says the same whether or not the number belongs to an account. The
    identity verification of the account stops counting (level 1), since a
    phone alone proved the change."""

    def verify(rt: Runtime, form) -> Response | tuple[str | None, int]:
        try:
            if confirmation_differs(form):
                service.check_reset_password(rt, form.phone.data, form.password.data or "",
                                             client_ip(), device_cookie(rt))
                return None, 400
            account = service.reset_password_by_sms(
                rt, form.phone.data, form.code.data or "", form.password.data or "",
                client_ip(), device_cookie(rt))
        except service.PasswordCheckLimitError as exc:
            if exc.browser:
                return _("Too many password resets from this browser. Try again later."), 429
            return _("Too many password resets from your network. Try again later."), 429
        except accounts.AccountError as exc:
            _show_account_errors(form, exc)
            return None, 400
        except service.InvalidCodeError:
            return _("The code is wrong or has expired."), 401
        flash(_("Your password is changed. Sign in with it; verify your identity again "
                "in your account to restore its assurance level."), "notice")
        added = totp.added_on(account)
        if added is not None:
            flash(_("An authenticator app added on %(date)s is still needed to sign in. If "
                    "it is not yours, visit a service counter with your ID card to have it "
                    "removed.", date=added.isoformat()), "notice")
        item = interaction.load(rt.store, form.i.data, browser_id())
        return redirect(url_for("authn.login", i=item.id if item else None))

    form = require_min_length(PasswordResetForm(),
                              current_runtime().settings["passwords"]["min_length"])
    return _sms_page(form, "reset_password.html", "reset_password", verify)


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Self-registration; on success the new account is logged in. Every
    error is shown at once, each on its field, with what was typed (except
    the passwords)."""
    rt = current_runtime()
    form = require_min_length(RegisterForm(), rt.settings["passwords"]["min_length"])
    item = interaction.load(rt.store, request.values.get("i") or form.i.data, browser_id())
    if request.method == "GET":
        form.i.data = item.id if item else ""
        return render_template("register.html", form=form, item=item,
                               sms=rt.registries.sms is not None)
    # CSRFProtect has checked the token of every POST before this view.
    status = 400
    valid = form.validate_on_submit()
    try:
        if valid:
            sso = service.register(rt, form.username.data, form.password.data,
                                   name=form.name.data, email=form.email.data, ip=client_ip(),
                                   previous=sso_cookie(rt), public=_public_browser(rt))
            return logged_in_response(rt, item, sso)
        # The form's own errors (a field left empty, a confirmation that
        # differs) come with the account's.
        service.check_registration(rt, form.username.data or "", form.password.data or "",
                                   name=form.name.data, email=form.email.data, ip=client_ip())
    except service.RegistrationLimitError:
        form.username.errors = [*form.username.errors, _(
            "Too many registrations from your network. Try again later.")]
        status = 429
    except accounts.AccountError as exc:
        _show_account_errors(form, exc)
    return render_template("register.html", form=form, item=item,
                           sms=rt.registries.sms is not None), status


@bp.route("/consent", methods=["GET", "POST"])
def consent():
    """Ask the user to release the requested scopes to the client."""
    rt = current_runtime()
    form = ConsentForm()
    item_id = request.values.get("i") or form.i.data
    item = interaction.load(rt.store, item_id, browser_id())
    _sso, account = current_sso(rt)
    client = _client_for(item)
    if item is None or account is None or client is None:
        return _expired()
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


@bp.route("/login/step-up", methods=["GET", "POST"])
def step_up():
    """The client asked for a higher level than this login has: verify the
    identity further (account console), or add a factor here (a code sent
    to the verified phone, or the password), or cancel, which tells the
    client ``unmet_authentication_requirements``."""
    rt = current_runtime()
    form = StepUpForm()
    item = interaction.load(rt.store, request.values.get("i") or form.i.data, browser_id())
    sso, account = current_sso(rt)
    client = _client_for(item)
    if item is None or account is None or client is None:
        return _expired()
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
        except otp.SmsBudgetExhaustedError:
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
