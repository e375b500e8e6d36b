"""TOTP second factor: login with a code or a recovery code, replay and
guessing limits, operators who must use it; replacing the recovery codes
and removing the authenticator only after a re-authentication. (Setting one
up in the console after a re-authentication: test_reauth.py.)"""

from __future__ import annotations

import re
import time

import jwt as pyjwt
import pyotp
import pytest
import requests

from tests.helpers import Browser, callback_params, hidden_inputs, redeem
from tests.reauth_support import reauth_with_app

#: The time step each test secret was confirmed with.
ENROLLED_AT: dict[str, int] = {}


def _post(session, url, page, **fields):
    data = hidden_inputs(page.text)
    data.update(fields)
    return session.post(url, data=data, allow_redirects=False)


def _password(session, provider, username, password, i=None):
    page = session.get(f"{provider.url}/login", params={"i": i} if i else None)
    return _post(session, f"{provider.url}/login", page, username=username, password=password)


def _step() -> int:
    return pyotp.TOTP(pyotp.random_base32()).timecode(time.time())


def _code(secret: str, offset: int = 0, step: int | None = None) -> str:
    return pyotp.TOTP(secret).generate_otp((_step() if step is None else step) + offset)


def enrol(provider, username) -> tuple[str, list[str]]:
    """Set up an authenticator for ``username`` through the TOTP service (as
    the console does after a re-authentication): ``(secret, recovery
    codes)``. It is confirmed with the code of the time step ``ENROLLED_AT``
    records."""
    from idp.accounts.service import find_by_username
    from idp.authn import totp

    with provider.app.app_context():
        account = find_by_username(username)
        secret = totp.start_enrolment(provider.runtime, account).secret
        ENROLLED_AT[secret] = _step()
        codes = totp.confirm_enrolment(provider.runtime, account,
                                       _code(secret, step=ENROLLED_AT[secret]), None)
    return secret, codes


def test_enrolment_and_login_with_totp(provider):
    from sqlalchemy import text

    from idp.extensions import db

    username, password, _ = provider.create_account()
    secret, codes = enrol(provider, username)
    assert len(codes) == 10 and len(set(codes)) == 10
    with provider.app.app_context():
        stored = " ".join(str(v) for v in db.session.execute(text(
            "SELECT secret_enc FROM totp_credentials")).scalars())
        hashes = " ".join(db.session.execute(text(
            "SELECT code_hash FROM recovery_codes")).scalars())
    assert secret not in stored and not any(c.replace("-", "") in hashes for c in codes)
    client = provider.create_client()
    browser = Browser(provider.url)
    login = browser.go(browser.authorize_url(client, nonce="t"), username=username,
                       password=password)
    assert "/login/otp" in login.url and "Lost your device" in login.text
    wrong = _post(browser.session, f"{provider.url}/login/otp", login, action="totp",
                  code="000000" if _code(secret) != "000000" else "111111")
    assert wrong.status_code == 401
    # The enrolment used its time step: the login takes the next one.
    done = _post(browser.session, f"{provider.url}/login/otp", wrong, action="totp",
                 code=_code(secret, 1, step=ENROLLED_AT[secret]))
    assert done.status_code == 303
    callback = browser.go(provider.url + done.headers["Location"])
    tokens = redeem(provider.url, client, callback_params(callback)["code"]).json()
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_a_code_is_accepted_once(provider):
    username, password, _ = provider.create_account()
    secret, _codes = enrol(provider, username)
    session = requests.Session()
    first = _password(session, provider, username, password)
    page = session.get(provider.url + first.headers["Location"])
    # The step used to confirm the enrolment cannot be used again.
    step = ENROLLED_AT[secret]
    replay = _post(session, f"{provider.url}/login/otp", page, action="totp",
                   code=_code(secret, step=step))
    assert replay.status_code == 401
    later = _post(session, f"{provider.url}/login/otp", replay, action="totp",
                  code=_code(secret, 1, step=step))
    assert later.status_code == 303


def test_recovery_code_works_once(provider):
    username, password, _ = provider.create_account()
    _secret, codes = enrol(provider, username)
    for expected in (303, 401):
        session = requests.Session()
        first = _password(session, provider, username, password)
        page = session.get(provider.url + first.headers["Location"])
        used = _post(session, f"{provider.url}/login/otp", page, action="recovery",
                     recovery_code=codes[0].upper().replace("-", " "))
        assert used.status_code == expected


def test_guessing_is_throttled(provider):
    username, password, _ = provider.create_account()
    secret, _ = enrol(provider, username)
    session = requests.Session()
    first = _password(session, provider, username, password)
    page = session.get(provider.url + first.headers["Location"])
    wrong = "000000" if _code(secret) != "000000" else "111111"
    statuses = []
    for _ in range(6):
        page = _post(session, f"{provider.url}/login/otp", page, action="totp", code=wrong)
        statuses.append(page.status_code)
    assert statuses == [401] * 5 + [429]
    assert "Too many failed attempts. Try again in 10 seconds." in page.text


def test_strangers_code_guesses_do_not_stop_the_owner(make_provider):
    """Issue 7 finding 3 regression, second factor: a stranger who knows the
    password and guesses TOTP codes locked the owner out of it too. The
    browser the owner signed in with before counts apart."""
    provider = make_provider()
    username, password, _ = provider.create_account()
    secret, codes = enrol(provider, username)
    owner = requests.Session()
    first = _password(owner, provider, username, password)
    # No device cookie before the second factor is proven.
    assert "idp_device" not in first.headers.get("Set-Cookie", "")
    page = owner.get(provider.url + first.headers["Location"])
    done = _post(owner, f"{provider.url}/login/otp", page, action="totp",
                 code=_code(secret, 1))
    assert done.status_code == 303 and "idp_device" in owner.cookies
    stranger = requests.Session()
    first = _password(stranger, provider, username, password)
    page = stranger.get(provider.url + first.headers["Location"])
    wrong = "000000" if _code(secret) != "000000" else "111111"
    statuses = []
    for _ in range(6):
        page = _post(stranger, f"{provider.url}/login/otp", page, action="totp", code=wrong)
        statuses.append(page.status_code)
    assert statuses == [401] * 5 + [429]
    first = _password(owner, provider, username, password)
    page = owner.get(provider.url + first.headers["Location"])
    done = _post(owner, f"{provider.url}/login/otp", page, action="recovery",
                 recovery_code=codes[0])
    assert done.status_code == 303


def test_operators_must_set_up_totp_and_keep_it(provider):
    from idp.accounts.service import create_account

    with provider.app.app_context():
        admin = create_account(provider.runtime, "op" + str(time.time_ns())[-8:],
                               "operator password", admin=True)
        username = admin.username
    session = requests.Session()
    first = _password(session, provider, username, "operator password")
    assert "/login/otp" in first.headers["Location"]
    assert "idp_sso" not in first.headers.get("Set-Cookie", "")
    page = session.get(provider.url + first.headers["Location"])
    assert "<svg" in page.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    step = _step()
    done = _post(session, f"{provider.url}/login/otp", page, action="totp",
                 code=_code(secret, step=step))
    assert done.status_code == 200 and "recovery" in done.text.lower()
    assert "idp_sso" in done.headers["Set-Cookie"]
    security = session.get(f"{provider.url}/account/security")
    assert 'data-totp="on"' in security.text
    assert reauth_with_app(session, provider.url, "operator password",
                           code=_code(secret, 1, step=step)).status_code == 303
    security = session.get(f"{provider.url}/account/security")
    assert 'value="regenerate"' in security.text and 'value="disable"' not in security.text
    refused = _post(session, f"{provider.url}/account/security", security, action="disable")
    assert refused.status_code == 400 and "must keep" in refused.text


def _operator_sign_in(provider, username, password):
    """A new browser past an operator's password: ``(session, set-up page, secret)``."""
    session = requests.Session()
    first = _password(session, provider, username, password)
    assert "/login/otp" in first.headers["Location"]
    page = session.get(provider.url + first.headers["Location"])
    return session, page, re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)


def test_each_operator_sign_in_sets_up_a_secret_of_its_own(provider):
    """Regression (issue 7 review, finding 5): every password sign-in of an
    operator without an authenticator was shown the same unconfirmed
    secret, so whoever had the password once kept a copy of the operator's
    future second factor. Each pending login has a secret of its own, shown
    again only to it; another's code confirms nothing here; and when one
    sign-in confirmed first, the other, ended with every session of the
    account, is told so and to sign in again with that authenticator."""
    from idp.accounts.service import create_account, find_by_username
    from idp.authn import totp

    username = "op" + str(time.time_ns())[-8:]
    with provider.app.app_context():
        create_account(provider.runtime, username, "operator password", admin=True)
    intruder, intruder_page, intruder_secret = _operator_sign_in(
        provider, username, "operator password")
    operator, operator_page, operator_secret = _operator_sign_in(
        provider, username, "operator password")
    assert intruder_secret != operator_secret
    # Nothing is stored on the account before a confirmation.
    with provider.app.app_context():
        assert totp.credential(find_by_username(username)) is None
    # The page shows its own secret again (a reload, a wrong code).
    again = operator.get(f"{provider.url}/login/otp")
    assert f'id="totp-secret">{operator_secret}<' in again.text
    wrong = _post(operator, f"{provider.url}/login/otp", again, action="totp",
                  code=_code(intruder_secret))
    assert wrong.status_code == 401 and f'id="totp-secret">{operator_secret}<' in wrong.text
    step = _step()
    done = _post(intruder, f"{provider.url}/login/otp", intruder_page, action="totp",
                 code=_code(intruder_secret, step=step))
    assert done.status_code == 200 and "idp_sso" in done.headers["Set-Cookie"]
    late = _post(operator, f"{provider.url}/login/otp", wrong, action="totp",
                 code=_code(operator_secret, step=step))
    superseded = ("Another sign-in set up an authenticator for this account meanwhile, "
                  "which ended this one. Sign in again and enter a code from it; if it is "
                  "not yours, tell your administrator.")
    assert late.status_code == 409 and superseded in late.text
    assert 'id="totp-secret"' not in late.text and "idp_sso" not in late.headers.get(
        "Set-Cookie", "")
    shown = operator.get(f"{provider.url}/login/otp")
    assert shown.status_code == 409 and 'id="totp-secret"' not in shown.text
    assert superseded in shown.text
    with provider.app.app_context():
        stored = totp.credential(find_by_username(username))
        assert provider.runtime.pii.decrypt("totp", stored.secret_enc) == intruder_secret
        assert stored.confirmed_at is not None


def test_no_authenticator_is_set_up_at_sign_in_during_the_hold_after_an_sms_reset(provider):
    """Regression (attack 8, F2): an operator without an authenticator app
    (a new one, or after ``idp users reset-second-factor``) whose password
    was reset by an SMS code set one up at the next password sign-in. So
    whoever held the phone bound their own app, which also ended the hold
    (an account with an app is not held) and opened level 3 to them: a
    phone thief made the account theirs (docs/recovery.md; NIST SP 800-63B
    §6.1.2.1, §6.1.2.3). During ``session.reauth_hold_after_sms_reset``
    the sign-in is shown no secret and confirms nothing: the page says
    until when and what else works (403), no session starts, nothing is
    stored, the refusal is audited. After the hold the set-up works."""
    from datetime import timedelta
    from html import unescape

    from sqlalchemy import select

    from idp.accounts.service import create_account, find_by_username
    from idp.audit.models import AuditEvent
    from idp.authn import totp
    from idp.extensions import db
    from idp.timeutil import utcnow
    from tests.integration.test_email import _reset_by_sms_at
    from tests.integration.test_step_up import hold_ends

    username = "op" + str(time.time_ns())[-8:]
    with provider.app.app_context():
        create_account(provider.runtime, username, "operator password", admin=True)
    _reset_by_sms_at(provider, username, utcnow())
    session = requests.Session()
    first = _password(session, provider, username, "operator password")
    assert "/login/otp" in first.headers["Location"]
    assert "idp_sso" not in first.headers.get("Set-Cookie", "")
    page = session.get(provider.url + first.headers["Location"])
    assert page.status_code == 403
    assert 'id="totp-secret"' not in page.text and "<svg" not in page.text
    assert ("Your password was reset by a text message, which proves only that you hold "
            "that phone: the authenticator app this account needs cannot be set up until "
            f"{hold_ends(provider, username)}. Sign in again then, or visit a service "
            "counter with your ID card.") in unescape(page.text)
    refused = _post(session, f"{provider.url}/login/otp", page, action="totp",
                    code=_code(pyotp.random_base32()))
    assert refused.status_code == 403 and 'id="totp-secret"' not in refused.text
    assert "idp_sso" not in refused.headers.get("Set-Cookie", "")
    with provider.app.app_context():
        account = find_by_username(username)
        assert totp.credential(account) is None
        refusal = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "login.failure", AuditEvent.account_id == account.id)).one()
        assert refusal.detail["reason"] == "reset_hold" and refusal.detail["enrol"] is True
    hold = provider.runtime.settings["session"]["reauth_hold_after_sms_reset"]
    _reset_by_sms_at(provider, username, utcnow() - timedelta(seconds=hold + 1))
    later, shown, secret = _operator_sign_in(provider, username, "operator password")
    done = _post(later, f"{provider.url}/login/otp", shown, action="totp", code=_code(secret))
    assert done.status_code == 200 and "idp_sso" in done.headers["Set-Cookie"]


def _signed_in_with_recovery_code(provider, username, password, code):
    session = requests.Session()
    first = _password(session, provider, username, password)
    page = session.get(provider.url + first.headers["Location"])
    assert _post(session, f"{provider.url}/login/otp", page, action="recovery",
                 recovery_code=code).status_code == 303
    return session


def test_removing_needs_a_reauthentication(provider):
    """Regression: a session could remove the authenticator with a code of
    it alone. Now the password and the second factor are asked again; a
    recovery code stands in for a lost device."""
    from idp.accounts.service import find_by_username
    from idp.audit.models import AuditEvent
    from idp.extensions import db

    username, password, _ = provider.create_account()
    secret, codes = enrol(provider, username)
    session = _signed_in_with_recovery_code(provider, username, password, codes[1])
    url = f"{provider.url}/account/security"
    page = session.get(url)
    assert 'data-reauth="needed"' in page.text and 'value="disable"' not in page.text
    # The session's CSRF token is valid for any form: the page hiding the
    # button is not what refuses.
    token = hidden_inputs(session.get(f"{provider.url}/account/reauth").text)["csrf_token"]
    refused = session.post(url, data={"csrf_token": token, "action": "disable"},
                           allow_redirects=False)
    assert refused.status_code == 303
    assert refused.headers["Location"] == "/account/reauth?next=/account/security"
    step = ENROLLED_AT[secret]
    wrong = reauth_with_app(session, provider.url, "not the password",
                            code=_code(secret, 1, step=step))
    assert wrong.status_code == 401 and "password is incorrect" in wrong.text
    # A step at or before the last accepted one is a replay.
    replay = reauth_with_app(session, provider.url, password, code=_code(secret, step=step))
    assert replay.status_code == 401 and "wrong or has expired" in replay.text
    done = reauth_with_app(session, provider.url, password, code=_code(secret, 1, step=step))
    assert done.status_code == 303 and done.headers["Location"] == "/account/security"
    removed = _post(session, url, session.get(url), action="disable")
    assert removed.status_code == 303
    assert 'data-totp="off"' in session.get(url).text
    # Sign-in is one step again.
    again = _password(requests.Session(), provider, username, password)
    assert "/login/otp" not in again.headers["Location"]
    with provider.app.app_context():
        account_id = find_by_username(username).id
        events = [(e.event, e.outcome, e.detail.get("reason"), e.detail.get("method"))
                  for e in db.session.query(AuditEvent).filter_by(account_id=account_id)
                  .order_by(AuditEvent.created_at, AuditEvent.id)]
    assert [e for e in events if e[0].startswith(("reauth.", "totp.disabled"))] == [
        ("reauth.failure", "failure", "invalid_credentials", None),
        ("reauth.failure", "failure", "totp_code", None),
        ("reauth.success", "success", None, ["pwd", "otp"]),
        ("totp.disabled", "success", None, None)]


def test_a_lost_device_is_replaced_with_recovery_codes(provider):
    """Recovery (docs/recovery.md): a recovery code at sign-in, another to
    re-authenticate, then the old authenticator is removed and a new one
    set up in the same re-authentication."""
    username, password, _ = provider.create_account()
    _lost, codes = enrol(provider, username)
    session = _signed_in_with_recovery_code(provider, username, password, codes[0])
    assert reauth_with_app(session, provider.url, password,
                           recovery_code=codes[0]).status_code == 401
    assert reauth_with_app(session, provider.url, password,
                           recovery_code=codes[2]).status_code == 303
    url = f"{provider.url}/account/security"
    assert _post(session, url, session.get(url), action="disable").status_code == 303
    started = _post(session, url, session.get(url), action="start")
    assert started.status_code == 200 and "<svg" in started.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text).group(1)
    assert secret != _lost
    done = _post(session, url, started, action="confirm", code=_code(secret))
    assert done.status_code == 200
    assert len(re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", done.text)) == 10
    # The old recovery codes went with the old authenticator.
    session = requests.Session()
    first = _password(session, provider, username, password)
    page = session.get(provider.url + first.headers["Location"])
    assert _post(session, f"{provider.url}/login/otp", page, action="recovery",
                 recovery_code=codes[3]).status_code == 401


@pytest.mark.parametrize("ended_by", ["suspension", "password change"])
def test_a_login_waiting_for_its_code_ends_with_every_session(provider, ended_by):
    """Regression (attack 8, F3): a login that proved the password and
    waited for its TOTP code outlived the end of every session of the
    account (a suspension and reinstatement, a password reset or change):
    whoever typed the old password (perhaps a leaked one) still got a
    session of the new generation with the next code. A pending login
    belongs to the session generation it began in (idp.sessions): it is
    void once the account's sessions all ended, and the page goes back to
    the login."""
    from idp.accounts.service import find_by_username
    from idp.admin.service import reinstate, suspend

    username, password, _ = provider.create_account()
    secret, codes = enrol(provider, username)
    attacker = requests.Session()
    first = _password(attacker, provider, username, password)
    assert "/login/otp" in first.headers["Location"]
    page = attacker.get(provider.url + first.headers["Location"])
    if ended_by == "suspension":
        with provider.app.app_context():
            account = find_by_username(username)
            suspend(provider.runtime, account, "op", "reported compromised")
            reinstate(provider.runtime, account, "op")
    else:
        owner = _signed_in_with_recovery_code(provider, username, password, codes[0])
        assert reauth_with_app(owner, provider.url, password, recovery_code=codes[1],
                               next_path="/account/password").status_code == 303
        form = owner.get(f"{provider.url}/account/password")
        changed = _post(owner, f"{provider.url}/account/password", form, current=password,
                        password="a brand new passphrase", confirm="a brand new passphrase")
        assert changed.status_code == 303
    done = _post(attacker, f"{provider.url}/login/otp", page, action="totp",
                 code=_code(secret, 1, step=ENROLLED_AT[secret]))
    assert done.status_code == 303 and "/login" in done.headers["Location"]
    assert "/login/otp" not in done.headers["Location"]
    assert "idp_sso" not in done.headers.get("Set-Cookie", "")
    again = attacker.get(f"{provider.url}/login/otp", allow_redirects=False)
    assert again.status_code == 302 and "/login/otp" not in again.headers["Location"]


@pytest.mark.parametrize("field", ["code", "recovery_code"])
def test_second_step_without_a_pending_login_goes_to_the_login(provider, field):
    session = requests.Session()
    response = session.get(f"{provider.url}/login/otp", allow_redirects=False)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_new_recovery_codes_need_a_reauthentication(provider):
    """Regression: any session could replace the recovery codes, and use one
    to pass the second step."""
    username, password, _ = provider.create_account()
    secret, codes = enrol(provider, username)
    session = _signed_in_with_recovery_code(provider, username, password, codes[0])
    url = f"{provider.url}/account/security"
    token = hidden_inputs(session.get(f"{provider.url}/account/reauth").text)["csrf_token"]
    refused = session.post(url, data={"csrf_token": token, "action": "regenerate"},
                           allow_redirects=False)
    assert refused.status_code == 303 and "/account/reauth" in refused.headers["Location"]
    assert reauth_with_app(session, provider.url, password,
                           code=_code(secret, 1, step=ENROLLED_AT[secret])).status_code == 303
    fresh = _post(session, url, session.get(url), action="regenerate")
    assert fresh.status_code == 200
    assert len(re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", fresh.text)) == 10
    # The old ones no longer work.
    session = requests.Session()
    first = _password(session, provider, username, password)
    page = session.get(provider.url + first.headers["Location"])
    assert _post(session, f"{provider.url}/login/otp", page, action="recovery",
                 recovery_code=codes[1]).status_code == 401
