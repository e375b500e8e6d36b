"""A login waiting for its second factor (idp.authn.service.complete_login)
below HTTP: it belongs to the account's session generation, and an
operator's first authenticator is not set up with it during the hold after
a password reset by SMS code."""

from __future__ import annotations

import time

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


def _with_app(rt, account) -> pyotp.TOTP:
    """Set up an authenticator app for ``account`` (as the console does)."""
    secret = totp.start_enrolment(rt, account).secret
    totp.confirm_enrolment(rt, account, pyotp.TOTP(secret).now(), None)
    db.session.commit()
    return pyotp.TOTP(secret)


def _next_code(app: pyotp.TOTP) -> str:
    """A code of the time step after the current one (the current one was
    used to confirm the app; RFC 6238 §5.2 accepts one step of drift)."""
    return app.generate_otp(app.timecode(time.time()) + 1)


@pytest.mark.parametrize("ended_by", ["end_all", "suspension"])
def test_a_pending_login_ends_with_every_session_of_the_account(rt, account, ended_by):
    """The first factor proven before the account's sessions all ended (a
    password reset or change, a suspension) no longer opens one with the
    next code: the pending login belongs to the session generation it began
    in (idp.sessions.end_all moves it on)."""
    from idp import sessions
    from idp.admin.service import reinstate, suspend

    app = _with_app(rt, account)
    pending = service.complete_login(rt, account, ["pwd"], None)
    assert service.pending_account(rt, pending.token) is account
    if ended_by == "end_all":
        sessions.end_all(rt, account, "password_reset", revoke_grants=True)
    else:
        suspend(rt, account, "op", "reported compromised")
        reinstate(rt, account, "op")
    db.session.commit()
    assert service.pending_account(rt, pending.token) is None
    code = _next_code(app)
    with pytest.raises(service.LoginFailedError):
        service.finish_second_factor(rt, pending.token, code, recovery=False, ip=None)
    # The code was right: a pending login of the new generation takes it.
    again = service.complete_login(rt, account, ["pwd"], None)
    sso = service.finish_second_factor(rt, again.token, code, recovery=False, ip=None)
    assert sso.generation == account.session_generation
