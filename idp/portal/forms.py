"""Forms of the account console (Flask-WTF: every form carries a CSRF token).
``i`` is the pending authorization request a step-up returns to, if any."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from idp.authn.forms import (
    Form,
    NewPasswordFields,
    SmsCodeForm,
    sms_code_field,
    totp_code_field,
)


class IdentityForm(Form):
    """Name and resident ID number, checked with the population registry."""

    name = StringField(_l("Full name, as on your ID card"),
                       validators=[DataRequired(), Length(max=128)],
                       render_kw={"autocomplete": "name"})
    id_number = StringField(_l("Resident ID number"),
                            validators=[DataRequired(), Length(max=64)],
                            render_kw={"autocomplete": "off", "spellcheck": "false",
                                       "autocapitalize": "characters"})
    i = HiddenField()


class StrongProofForm(Form):
    """One independent strong proof; the button pressed (``method``) says which."""

    card_number = StringField(_l("Social security card number"),
                              validators=[Optional(), Length(max=32)],
                              render_kw={"autocomplete": "off", "spellcheck": "false",
                                         "autocapitalize": "characters"})
    liveness_token = StringField(_l("Liveness token from the mobile app"),
                                 validators=[Optional(), Length(max=512)],
                                 render_kw={"autocomplete": "off", "spellcheck": "false"})
    i = HiddenField()


class PhoneForm(SmsCodeForm):
    """A mobile number for the account, proven by an SMS code and the
    account's password (and, to keep the identity level when replacing a
    number, a code of the authenticator app)."""

    password = PasswordField(_l("Your password"), validators=[Optional(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    totp = totp_code_field()


class TotpSetupForm(Form):
    """Set up the authenticator (``start``, then ``confirm`` with its first
    code), replace the recovery codes (``regenerate``) or remove it
    (``disable``): the button pressed, ``action``, says which."""

    code = totp_code_field()


class EntityForm(Form):
    """An entity the account is the legal representative of."""

    uscc = StringField(_l("Unified social credit code"),
                       validators=[DataRequired(), Length(max=64)],
                       render_kw={"autocomplete": "off", "spellcheck": "false",
                                  "autocapitalize": "characters"})
    entity_name = StringField(_l("Registered name of the entity"),
                              validators=[DataRequired(), Length(max=200)],
                              render_kw={"autocomplete": "organization"})


class ReauthForm(Form):
    """Confirm it is you: the password and, by the button pressed
    (``action``), a code of the authenticator app (``verify``), a recovery
    code (``recovery``), or a code sent by SMS (``send``, then ``verify``).
    ``next`` is the console page to go back to."""

    password = PasswordField(_l("Your password"), validators=[Optional(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    code = totp_code_field()
    sms_code = sms_code_field()
    recovery_code = StringField(_l("Or a recovery code"),
                                validators=[Optional(), Length(max=32)],
                                render_kw={"autocomplete": "off", "spellcheck": "false"})
    next = HiddenField()


class PasswordChangeForm(NewPasswordFields):
    """A new password, with the current one typed again."""

    current = PasswordField(_l("Current password"),
                            validators=[DataRequired(), Length(max=1024)],
                            render_kw={"autocomplete": "current-password"})


class LinkCardForm(Form):
    """Confirm (or cancel, ``action``) linking the card read at the kiosk."""


class EmailForm(Form):
    """A new e-mail address, and the password when it is another address
    than the account's (idp.accounts.emails.needs_password)."""

    email = EmailField(_l("New e-mail address"), validators=[DataRequired(), Length(max=254)],
                       render_kw={"autocomplete": "email", "spellcheck": "false",
                                  "autocapitalize": "off"})
    password = PasswordField(_l("Your password"), validators=[Optional(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})


class ConfirmEmailForm(Form):
    """The confirming POST of an e-mail verification link (CSRF only: the
    link's token in the URL is the proof)."""


class WithdrawConsentForm(Form):
    """Withdraw the consent given to one relying party."""

    client_id = HiddenField(validators=[DataRequired(), Length(max=64)])


class EndSessionForm(Form):
    """Log out one of the account's sessions (``sid``: its public id)."""

    sid = HiddenField(validators=[DataRequired(), Length(max=64)])


class EndAllSessionsForm(Form):
    """Log out every session of the account (CSRF only)."""
