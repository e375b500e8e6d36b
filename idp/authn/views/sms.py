"""The SMS pages of the ``authn`` blueprint: login and registration by a code
sent to a mobile number."""

from __future__ import annotations

from flask_babel import gettext as _

from idp.accounts import service as accounts
from idp.authn import service
from idp.authn.forms import SmsLoginForm, SmsRegisterForm, confirmation_differs, require_min_length
from idp.authn.pages import fix_public_box, public_browser, show_account_errors, sms_page
from idp.authn.views import bp
from idp.runtime import Runtime, current_runtime
from idp.sessions import SsoSession
from idp.web import client_ip, device_cookie, sso_cookie


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
    fix_public_box(current_runtime(), form)
    return sms_page(form, "login_sms.html", "login", verify)



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
                public=public_browser(rt))
        except service.RegistrationLimitError:
            return _("Too many registrations from your network. Try again later."), 429
        except accounts.AccountError as exc:
            show_account_errors(form, exc)
            return None, 400
        except service.InvalidCodeError:
            return _("The code is wrong or has expired."), 401

    form = require_min_length(SmsRegisterForm(),
                              current_runtime().settings["passwords"]["min_length"])
    return sms_page(form, "register_sms.html", "register", verify)
