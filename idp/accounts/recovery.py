"""The hold after a password reset by SMS code (NIST SP 800-63B §6.1.2.3).

For ``session.reauth_hold_after_sms_reset`` seconds after such a reset, on
an account without an authenticator app (every session of one with an app
proved the app), the password and a code to the phone prove only the
phone. Several rules read the hold, in login, in the account console and in
the protocol, so it lives below all of them: re-authentication
(:func:`idp.authn.service.reauth_method`), step-up factors
(:mod:`idp.oidc.stepup`), pointing the e-mail address at another mailbox
(:func:`idp.accounts.emails.send_verification_link`) and the carrier check
(:func:`idp.accounts.verification.carrier_check_refusal`).
"""

from __future__ import annotations

from sqlalchemy import select

from idp.accounts.models import Account, TotpCredential
from idp.extensions import db
from idp.runtime import Runtime
from idp.timeutil import epoch, to_epoch


def sms_reset_hold_until(rt: Runtime, account: Account) -> int | None:
    """When the hold after a password reset by SMS code ends for ``account``.

    :returns: Unix seconds, or None when no hold applies (no such reset, the
        hold is over, or the account has a confirmed authenticator app).
    """
    if account.password_reset_by_sms_at is None:
        return None
    until = (to_epoch(account.password_reset_by_sms_at)
             + rt.settings["session"]["reauth_hold_after_sms_reset"])
    if until <= epoch():
        return None
    app = db.session.scalar(select(TotpCredential.id).where(
        TotpCredential.account_id == account.id, TotpCredential.confirmed_at.is_not(None)))
    return None if app is not None else until
