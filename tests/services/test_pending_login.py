"""A login waiting for its second factor (idp.authn.service.complete_login)
below HTTP: it belongs to the account's session generation, and an
operator's first authenticator is not set up with it during the hold after
a password reset by SMS code."""

from __future__ import annotations

import pyotp
import pytest

from idp.accounts.recovery import sms_reset_hold_until
from idp.authn import service, totp
from idp.extensions import db
from idp.timeutil import utcnow


def test_no_first_authenticator_during_the_hold_after_an_sms_reset(rt, account):
    """An operator without an app whose password an SMS code just set
    cannot set one up at sign-in, even with a right code of the pending
    login's own secret: the password proves only the phone
    (docs/recovery.md)."""
    account.is_admin = True
    account.password_reset_by_sms_at = utcnow()
    db.session.commit()
    pending = service.complete_login(rt, account, ["pwd"], None)
    assert isinstance(pending, service.PendingLogin) and pending.enrol
    with pytest.raises(service.EnrolmentHeldError) as held:
        service.pending_enrolment(rt, pending.token, account)
    assert held.value.until == sms_reset_hold_until(rt, account)
    secret = service._pending_secret(rt, pending.token)
    with pytest.raises(service.EnrolmentHeldError):
        service.enrol_and_finish(rt, pending.token, pyotp.TOTP(secret).now(), None)
    assert totp.credential(account) is None and not totp.has_totp(account)
