"""The password pages of the ``authn`` blueprint: login with a password,
self-registration, and a new password by SMS code."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from idp.accounts import service as accounts
from idp.authn import service, throttle, totp
from idp.authn.forms import (
    LoginForm,
    PasswordResetForm,
    RegisterForm,
    confirmation_differs,
    require_min_length,
)
from idp.authn.pages import (
    client_of,
    fix_public_box,
    logged_in_response,
    pending_interaction,
    public_browser,
    show_account_errors,
    sms_page,
)
from idp.authn.views import bp
from idp.oidc import interaction
from idp.runtime import Runtime, current_runtime
from idp.web import (
    browser_id,
    client_ip,
    device_cookie,
    local_next,
    retry_after_header,
    sso_cookie,
    too_many_attempts,
)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Password login; the message never reveals whether the account exists."""
    rt = current_runtime()
    form = LoginForm()
    fix_public_box(rt, form)
    item = pending_interaction(rt, form)
    if request.method == "GET":
        form.i.data = item.id if item else ""
        form.next.data = local_next(request.args.get("next")) or ""
        if item and item.arg("login_hint"):
            form.username.data = interaction.login_hint(rt.pii, item)
    error, status, headers = None, 200, {}
    if form.validate_on_submit():
        try:
            client = client_of(rt, item)
            sso = service.login_with_password(rt, form.username.data, form.password.data,
                                              client_ip(), sso_cookie(rt), device_cookie(rt),
                                              public=form.public.data,
                                              department=getattr(client, "department", None))
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
    return render_template("login.html", form=form, error=error, client=client_of(rt, item),
                           item=item, sms=rt.registries.sms is not None), status, headers


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Self-registration; on success the new account is logged in. Every
    error is shown at once, each on its field, with what was typed (except
    the passwords)."""
    rt = current_runtime()
    form = require_min_length(RegisterForm(), rt.settings["passwords"]["min_length"])
    item = pending_interaction(rt, form)
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
                                   previous=sso_cookie(rt), public=public_browser(rt))
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
        show_account_errors(form, exc)
    return render_template("register.html", form=form, item=item,
                           sms=rt.registries.sms is not None), status


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
            show_account_errors(form, exc)
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
    return sms_page(form, "reset_password.html", "reset_password", verify)
