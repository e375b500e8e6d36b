"""Forms of the login flow (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from idp.i18n import wtforms_translations


class Form(FlaskForm):
    """The base of every form of the provider: Flask-WTF's (a CSRF token in
    each), with WTForms' own messages in the page's language from a catalog
    read once per process (:func:`idp.i18n.wtforms_translations`)."""

    class Meta:
        def get_translations(self, form):
            """WTForms' translations for ``form`` (a ``gettext``/``ngettext``
            object), in the language of the current request."""
            return wtforms_translations()


def sms_code_field() -> StringField:
    """The six-digit code of a text message."""
    return StringField(_l("Code from the text message"), validators=[Optional(), Length(max=12)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


def totp_code_field() -> StringField:
    """The six-digit code of an authenticator app (RFC 6238)."""
    return StringField(_l("Code from your authenticator app"),
                       validators=[Optional(), Length(max=12)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


def public_computer_field() -> BooleanField:
    """The user says the computer is shared: the SSO session then ends with
    the browser and after ``session.public_idle_ttl`` seconds unused."""
    return BooleanField(_l("This is a public computer (sign me out when I close the browser)"))


class SmsCodeForm(Form):
    """A mobile number proven by an SMS code: first the number (``send``),
    then the code. ``i`` is the pending interaction, if any."""

    phone = StringField(_l("Mobile number"), validators=[DataRequired(), Length(max=32)],
                        render_kw={"autocomplete": "tel", "inputmode": "tel"})
    code = sms_code_field()
    i = HiddenField()


class LoginForm(Form):
    """Username and password; ``i`` is the pending interaction, if any."""

    username = StringField(_l("Username, ID number or mobile number"),
                           validators=[DataRequired(), Length(max=256)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none",
                                      "spellcheck": "false"})
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    public = public_computer_field()
    i = HiddenField()
    next = HiddenField()


class RegisterForm(Form):
    """Self-registration with username and password."""

    # The account rules say what a username may be (3-64 characters of a-z 0-9 . _ -).
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none",
                                      "spellcheck": "false"})
    name = StringField(_l("Full name"), validators=[Optional(), Length(max=128)],
                       render_kw={"autocomplete": "name"})
    email = EmailField(_l("E-mail"), validators=[Optional(), Length(max=254)],
                       render_kw={"autocomplete": "email"})
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(_l("Repeat password"),
                            validators=[DataRequired(), EqualTo("password",
                                        message=_l("The passwords do not match."))],
                            render_kw={"autocomplete": "new-password"})
    i = HiddenField()


class ConsentForm(Form):
    """Approve or deny a client's request; the button pressed is the decision.
    ``account`` names the account the page was shown to."""

    i = HiddenField()
    account = HiddenField()


class LogoutForm(Form):
    """Confirmation of logout when the request cannot prove it came from the user's RP."""


class SmsLoginForm(SmsCodeForm):
    """Sign-in by SMS code: first the number (``send``), then the code."""

    public = public_computer_field()
    next = HiddenField()


class PasswordResetForm(SmsCodeForm):
    """A new password, proven by an SMS code to the account's verified number.
    The view compares ``confirm`` with ``password`` (:func:`confirmation_differs`),
    so a mismatch is shown with the password's other faults and the code
    field stays."""

    password = PasswordField(_l("New password"), validators=[Optional(), Length(max=1024)],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(_l("Repeat password"), validators=[Optional(), Length(max=1024)],
                            render_kw={"autocomplete": "new-password"})


class TotpForm(Form):
    """The second step of a login: a code from the authenticator app, or a
    recovery code (the button pressed, ``action``, says which)."""

    code = totp_code_field()
    recovery_code = StringField(_l("Or a recovery code"),
                                validators=[Optional(), Length(max=32)],
                                render_kw={"autocomplete": "off", "spellcheck": "false"})
    i = HiddenField()
    next = HiddenField()


class StepUpForm(Form):
    """A further factor for a step-up: the button pressed (``action``) says
    which (``send_sms``, ``sms``, ``password``, ``cancel``). (TOTP is never
    missing here: every session of an account with an authenticator was
    opened with it, and setting one up ends the sessions opened before.)"""

    code = sms_code_field()
    password = PasswordField(_l("Password"), validators=[Optional(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    i = HiddenField()


class SmsRegisterForm(SmsCodeForm):
    """Registration with a mobile number proven by an SMS code: first the
    number (``send``), then the code with the account's details. The view
    compares ``confirm`` with ``password`` (:func:`confirmation_differs`), so
    a mismatch is shown with every other error of the details."""

    username = StringField(_l("Username"), validators=[Optional(), Length(max=64)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none",
                                      "spellcheck": "false"})
    name = StringField(_l("Full name"), validators=[Optional(), Length(max=128)],
                       render_kw={"autocomplete": "name"})
    password = PasswordField(_l("Password"), validators=[Optional(), Length(max=1024)],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(_l("Repeat password"), validators=[Optional(), Length(max=1024)],
                            render_kw={"autocomplete": "new-password"})


def confirmation_differs(form: Form) -> bool:
    """Whether ``form.confirm`` differs from ``form.password``; if so, says
    so on ``confirm``."""
    if (form.password.data or "") == (form.confirm.data or ""):
        return False
    form.confirm.errors = [*form.confirm.errors, _l("The passwords do not match.")]
    return True


def require_min_length(form: Form, min_length: int) -> Form:
    """Give ``form.password`` (a new password) the ``minlength`` that its
    page shows in the password rule (``_field.html``, ``new_password``).

    :param min_length: ``passwords.min_length``, in characters.
    :returns: ``form``.
    """
    form.password.render_kw = dict(form.password.render_kw or {}, minlength=min_length)
    return form


class NewPasswordFields(Form):
    """A new password, typed twice."""

    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo(
                                "password", message=_l("The passwords do not match."))],
                            render_kw={"autocomplete": "new-password"})


class NewPasswordForm(NewPasswordFields):
    """A new password for one that logged in but fails today's policy;
    ``i`` names the pending request to go on with."""

    i = HiddenField()
