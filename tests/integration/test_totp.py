"""TOTP second factor: enrolment with a QR code, login with a code or a
recovery code, replay and guessing limits, operators who must use it."""

from __future__ import annotations

import re
import time

import jwt as pyjwt
import pyotp
import pytest
import requests

from tests.helpers import Browser, callback_params, hidden_inputs, redeem

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


def enrol(provider, username, password) -> tuple[str, list[str]]:
    """Set up an authenticator in the console: ``(secret, recovery codes)``.
    It is confirmed with the code of the time step ``ENROLLED_AT`` records."""
    session = requests.Session()
    assert _password(session, provider, username, password).status_code == 303
    url = f"{provider.url}/account/security"
    started = _post(session, url, session.get(url), action="start")
    assert started.status_code == 200 and "<svg" in started.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text).group(1)
    ENROLLED_AT[secret] = _step()
    done = _post(session, url, started, action="confirm",
                 code=_code(secret, step=ENROLLED_AT[secret]))
    assert done.status_code == 200, done.text[:400]
    codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", done.text)
    return secret, codes


def test_enrolment_and_login_with_totp(provider):
    from sqlalchemy import text

    from idp.extensions import db

    username, password, _ = provider.create_account()
    secret, codes = enrol(provider, username, password)
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
    secret, _codes = enrol(provider, username, password)
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
    _secret, codes = enrol(provider, username, password)
    for expected in (303, 401):
        session = requests.Session()
        first = _password(session, provider, username, password)
        page = session.get(provider.url + first.headers["Location"])
        used = _post(session, f"{provider.url}/login/otp", page, action="recovery",
                     recovery_code=codes[0].upper().replace("-", " "))
        assert used.status_code == expected


def test_guessing_is_throttled(provider):
    username, password, _ = provider.create_account()
    secret, _ = enrol(provider, username, password)
    session = requests.Session()
    first = _password(session, provider, username, password)
    page = session.get(provider.url + first.headers["Location"])
    wrong = "000000" if _code(secret) != "000000" else "111111"
    statuses = []
    for _ in range(6):
        page = _post(session, f"{provider.url}/login/otp", page, action="totp", code=wrong)
        statuses.append(page.status_code)
    assert statuses == [401] * 5 + [429]


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
    assert 'data-totp="on"' in security.text and 'value="disable"' not in security.text
    refused = _post(session, f"{provider.url}/account/security", security, action="disable",
                    code=_code(secret, 1, step=step))
    assert refused.status_code == 400 and "must keep" in refused.text


def test_disable_needs_a_current_code(provider):
    username, password, _ = provider.create_account()
    secret, codes = enrol(provider, username, password)
    session = requests.Session()
    first = _password(session, provider, username, password)
    page = session.get(provider.url + first.headers["Location"])
    assert _post(session, f"{provider.url}/login/otp", page, action="recovery",
                 recovery_code=codes[1]).status_code == 303
    url = f"{provider.url}/account/security"
    page = session.get(url)
    assert _post(session, url, page, action="disable", code="12345").status_code == 401
    # A step at or before the last accepted one is a replay.
    page = session.get(url)
    step = ENROLLED_AT[secret]
    assert _post(session, url, page, action="disable",
                 code=_code(secret, step=step)).status_code == 401
    page = session.get(url)
    assert _post(session, url, page, action="disable",
                 code=_code(secret, 1, step=step)).status_code == 303
    assert 'data-totp="off"' in session.get(url).text
    # Sign-in is one step again.
    again = _password(requests.Session(), provider, username, password)
    assert "/login/otp" not in again.headers["Location"]


@pytest.mark.parametrize("field", ["code", "recovery_code"])
def test_second_step_without_a_pending_login_goes_to_the_login(provider, field):
    session = requests.Session()
    response = session.get(f"{provider.url}/login/otp", allow_redirects=False)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_new_recovery_codes_need_a_current_code(provider):
    """Regression: any session could replace the recovery codes, and use one
    to pass the second step."""
    username, password, _ = provider.create_account()
    secret, codes = enrol(provider, username, password)
    session = requests.Session()
    first = _password(session, provider, username, password)
    page = session.get(provider.url + first.headers["Location"])
    _post(session, f"{provider.url}/login/otp", page, action="recovery", recovery_code=codes[0])
    url = f"{provider.url}/account/security"
    assert _post(session, url, session.get(url), action="regenerate").status_code == 401
    fresh = _post(session, url, session.get(url), action="regenerate",
                  code=_code(secret, 1, step=ENROLLED_AT[secret]))
    assert fresh.status_code == 200
    assert len(re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", fresh.text)) == 10
