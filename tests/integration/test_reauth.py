"""Binding an authenticator needs a re-authentication at the level it will be
used at (NIST SP 800-63B §6.1.2.1): the password plus the second factor the
account already has, or plus a code sent to its verified phone. Issue 7,
finding 1: with a stolen social security card alone a thief enrolled an
authenticator at a kiosk; an SMS sign-in or a stolen password could too."""

from __future__ import annotations

import re
import time
from html import unescape

import pyotp
import pytest
import requests
from joserfc.jwk import ECKey

from connectors.sandbox import read_outbox
from tests.helpers import Browser, hidden_inputs
from tests.integration.test_kiosk import card_read, possession_account, post
from tests.integration.test_step_up import level_2_account
from tests.reauth_support import reauth_page, reauth_with_app, reauth_with_sms, send_reauth_code

SECURITY = "/account/security"


@pytest.fixture(scope="module")
def kiosk_client(gw):
    """A registered kiosk: ``(client, signing key)``."""
    provider, _ = gw
    key = ECKey.generate_key("P-256", parameters={"kid": "kiosk-reauth"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]}, kiosk=True)
    return client, key


def _csrf(session: requests.Session, base: str) -> str:
    """The session's CSRF token (valid for every form), from a page that has a form."""
    return hidden_inputs(session.get(f"{base}/login").text)["csrf_token"]


def _post(session: requests.Session, base: str, path: str, **fields) -> requests.Response:
    """POST ``fields`` with the session's CSRF token, as a forged or scripted form would."""
    return session.post(base + path, data={"csrf_token": _csrf(session, base), **fields},
                        allow_redirects=False)


def _has_authenticator(provider, username: str) -> bool:
    from idp.accounts.service import find_by_username
    from idp.authn import totp

    with provider.app.app_context():
        return totp.credential(find_by_username(username)) is not None


def _events(provider, username: str, prefix: str) -> list[tuple[str, str, str | None]]:
    from idp.accounts.service import find_by_username
    from idp.audit.models import AuditEvent
    from idp.extensions import db

    with provider.app.app_context():
        account_id = find_by_username(username).id
        rows = db.session.query(AuditEvent).filter_by(account_id=account_id).order_by(
            AuditEvent.id)
        return [(e.event, e.outcome, e.detail.get("reason")) for e in rows
                if e.event.startswith(prefix)]


def _password_session(provider, username: str, password: str) -> requests.Session:
    browser = Browser(provider.url)
    page = browser.go(f"{provider.url}/account", username=username, password=password)
    assert page.status_code == 200 and "/account/security" in page.text
    return browser.session


def _sms_session(provider, gateway, phone: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{provider.url}/login/sms", params={"next": "/account"})
    fields = hidden_inputs(page.text)
    fields.update(phone=phone, action="send")
    sent = session.post(f"{provider.url}/login/sms", data=fields)
    code = read_outbox(gateway.data_path, phone)[-1]["params"]["code"]
    fields = hidden_inputs(sent.text)
    fields.update(phone=phone, code=code, action="verify")
    done = session.post(f"{provider.url}/login/sms", data=fields, allow_redirects=False)
    assert done.status_code == 303 and done.headers["Location"] == "/account"
    return session


def _kiosk_session(provider, kiosk_client, person) -> requests.Session:
    client, key = kiosk_client
    answer = post(provider, client, key, card_read(provider, client, key, person,
                                                   card_type="social_security"))
    assert answer.status_code == 200, answer.text
    session = requests.Session()
    assert session.get(answer.json()["login_url"], allow_redirects=False).status_code == 302
    return session


def test_a_stolen_card_at_a_kiosk_cannot_enrol_an_authenticator(gw, kiosk_client):
    """The issue's attack: a card read at a kiosk, then "set up an
    authenticator". Whatever is typed (even the right password and a code
    to the phone), a kiosk session never re-authenticates."""
    provider, gateway = gw
    username, password, person = possession_account(provider, gateway)
    session = _kiosk_session(provider, kiosk_client, person)
    base = provider.url
    page = session.get(base + SECURITY)
    assert page.status_code == 200 and 'data-reauth="refused"' in page.text
    assert "sign in on your own device" in page.text and 'value="start"' not in page.text
    started = _post(session, base, SECURITY, action="start")
    assert started.status_code == 403 and "sign in on your own device" in started.text
    refused = reauth_page(session, base)
    assert refused.status_code == 200 and 'data-reauth="refused"' in refused.text
    before = len(read_outbox(gateway.data_path, person.phone))
    assert _post(session, base, "/account/reauth", action="send").status_code == 403
    assert len(read_outbox(gateway.data_path, person.phone)) == before
    typed = _post(session, base, "/account/reauth", action="verify", password=password,
                  sms_code="123456")
    assert typed.status_code == 403 and "sign in on your own device" in typed.text
    assert _post(session, base, SECURITY, action="start").status_code == 403
    assert not _has_authenticator(provider, username)
    assert _events(provider, username, "reauth.") == [("reauth.failure", "failure", "kiosk")]
    # Nor can the card replace the phone or the password.
    assert session.get(base + "/account/phone").status_code == 403
    assert session.get(base + "/account/password").status_code == 403


def test_an_sms_session_cannot_enrol_an_authenticator(gw):
    """A phone alone (a stolen phone) signs in, but does not re-authenticate:
    the password is asked too."""
    provider, gateway = gw
    username, _password, person = level_2_account(provider, gateway)
    session = _sms_session(provider, gateway, person.phone)
    base = provider.url
    page = session.get(base + SECURITY)
    assert 'data-reauth="needed"' in page.text and 'value="start"' not in page.text
    started = _post(session, base, SECURITY, action="start")
    assert started.status_code == 303
    assert started.headers["Location"] == "/account/reauth?next=/account/security"
    guessed = reauth_with_sms(session, base, gateway, person.phone, "password123")
    assert guessed.status_code == 401 and "password is incorrect" in guessed.text
    assert _post(session, base, SECURITY, action="start").status_code == 303
    assert not _has_authenticator(provider, username)


def test_a_stolen_password_alone_cannot_enrol_an_authenticator(gw):
    """The code goes to the owner's phone: without it the password does not
    re-authenticate, and the thief cannot move the phone to their own."""
    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    session = _password_session(provider, username, password)
    base = provider.url
    sent = send_reauth_code(session, base)
    assert sent.status_code == 200 and person.phone[-4:] in sent.text
    assert person.phone not in sent.text
    code = read_outbox(gateway.data_path, person.phone)[-1]["params"]["code"]
    guess = "000000" if code != "000000" else "111111"
    wrong = session.post(f"{base}/account/reauth", data={
        **hidden_inputs(sent.text), "password": password, "sms_code": guess,
        "action": "verify"}, allow_redirects=False)
    assert wrong.status_code == 401 and "wrong or has expired" in wrong.text
    assert _post(session, base, SECURITY, action="start").status_code == 303
    assert _post(session, base, SECURITY, action="confirm", code="123456").status_code == 303
    assert not _has_authenticator(provider, username)
    phone = session.get(base + "/account/phone", allow_redirects=False)
    assert phone.status_code == 302
    assert phone.headers["Location"] == "/account/reauth?next=/account/phone"
    assert ("reauth.failure", "failure", "sms_code") in _events(provider, username, "reauth.")


def test_password_and_sms_code_enrol_and_the_phone_is_told(gw):
    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    session = _password_session(provider, username, password)
    base = provider.url
    before = session.cookies.get("idp_sso")
    done = reauth_with_sms(session, base, gateway, person.phone, password)
    assert done.status_code == 303 and done.headers["Location"] == SECURITY
    # A new cookie value: a copy of the old one does not inherit the
    # re-authentication (it no longer signs in at all).
    assert session.cookies.get("idp_sso") != before
    stale = requests.Session()
    stale.cookies.set("idp_sso", before)
    assert stale.get(base + SECURITY, allow_redirects=False).status_code == 302
    page = session.get(base + SECURITY)
    assert 'value="start"' in page.text
    started = hidden_inputs(page.text)
    started = session.post(base + SECURITY, data={**started, "action": "start"})
    assert started.status_code == 200 and "<svg" in started.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text).group(1)
    confirmed = session.post(base + SECURITY, data={
        **hidden_inputs(started.text), "action": "confirm",
        "code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200
    assert len(re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", confirmed.text)) == 10
    assert _has_authenticator(provider, username)
    notice = read_outbox(gateway.data_path, person.phone)[-1]
    assert notice["template"] == "authenticator_added"
    assert notice["params"] == {"date": time.strftime("%Y-%m-%d", time.gmtime())}
    assert _events(provider, username, "reauth.") == [("reauth.success", "success", None)]
    # Every session ended (this one too): the next sign-in asks for the app.
    assert session.get(base + SECURITY, allow_redirects=False).status_code == 302


def test_each_setup_has_a_new_secret(gw):
    """A secret shown earlier (perhaps to another session, before this
    release) never becomes the authenticator of a new set-up."""
    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    from idp.accounts.service import find_by_username
    from idp.authn import totp

    with provider.app.app_context():
        shown = totp.start_enrolment(provider.runtime, find_by_username(username)).secret
    session = _password_session(provider, username, password)
    assert reauth_with_sms(session, provider.url, gateway, person.phone,
                           password).status_code == 303
    started = session.post(provider.url + SECURITY, data={
        **hidden_inputs(session.get(provider.url + SECURITY).text), "action": "start"})
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text).group(1)
    assert secret != shown
    wrong = session.post(provider.url + SECURITY, data={
        **hidden_inputs(started.text), "action": "confirm",
        "code": pyotp.TOTP(shown).now()})
    assert wrong.status_code == 401 and secret in wrong.text


def test_operators_enrol_only_after_their_password(gw, kiosk_client):
    """An operator without an authenticator sets one up at sign-in: after
    the password only, never after a card read or an SMS code alone."""
    from idp.accounts.service import create_account, find_by_username, set_phone_number
    from idp.accounts.verification import verify_carrier, verify_population
    from idp.extensions import db
    from tests.sandbox_support import fresh_person

    provider, gateway = gw
    person = fresh_person(gateway)
    username = "op" + str(time.time_ns())[-8:]
    with provider.app.app_context():
        create_account(provider.runtime, username, "operator password", admin=True)
        account = find_by_username(username)
        set_phone_number(provider.runtime, account, person.phone, verified=True)
        db.session.commit()
        verify_population(provider.runtime, account, person.name, person.id_number, None)
        # Possession of the number (the carrier check): the kiosk logs into it.
        verify_carrier(provider.runtime, account, None)
    for session in (_kiosk_pending(provider, kiosk_client, person),
                    _sms_pending(provider, gateway, person.phone)):
        page = session.get(f"{provider.url}/login/otp")
        assert page.status_code == 403 and "<svg" not in page.text
        assert "Sign in with your password to set up the authenticator" in page.text
        forged = session.post(f"{provider.url}/login/otp", data={
            **hidden_inputs(page.text), "action": "totp", "code": "123456"})
        assert forged.status_code == 403 and "idp_sso" not in forged.headers.get(
            "Set-Cookie", "")
    assert not _has_authenticator(provider, username)
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username=username, password="operator password")
    first = session.post(f"{provider.url}/login", data=fields, allow_redirects=False)
    page = session.get(provider.url + first.headers["Location"])
    assert page.status_code == 200 and "<svg" in page.text


def _kiosk_pending(provider, kiosk_client, person) -> requests.Session:
    client, key = kiosk_client
    answer = post(provider, client, key, card_read(provider, client, key, person))
    assert answer.status_code == 200, answer.text
    session = requests.Session()
    entered = session.get(answer.json()["login_url"], allow_redirects=False)
    assert "/login/otp" in entered.headers["Location"]
    return session


def _sms_pending(provider, gateway, phone) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{provider.url}/login/sms")
    sent = session.post(f"{provider.url}/login/sms",
                        data={**hidden_inputs(page.text), "phone": phone, "action": "send"})
    code = read_outbox(gateway.data_path, phone)[-1]["params"]["code"]
    done = session.post(f"{provider.url}/login/sms", data={
        **hidden_inputs(sent.text), "phone": phone, "code": code, "action": "verify"},
        allow_redirects=False)
    assert "/login/otp" in done.headers["Location"]
    return session


def test_an_account_without_a_second_factor_is_told(provider):
    """A password-only account has nothing to re-authenticate with: the
    page says to confirm a mobile number first, and nothing is bound."""
    username, password, _ = provider.create_account()
    session = _password_session(provider, username, password)
    page = session.get(provider.url + SECURITY)
    assert 'data-reauth="refused"' in page.text and "confirm a mobile number first" in page.text
    assert _post(session, provider.url, SECURITY, action="start").status_code == 303
    answer = _post(session, provider.url, "/account/reauth", action="verify",
                   password=password, code="123456")
    assert answer.status_code == 403 and "confirm a mobile number first" in answer.text
    assert not _has_authenticator(provider, username)
    session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    page = session.get(provider.url + SECURITY)
    assert "请先确认一个手机号" in page.text and "第二因素" in page.text


def test_a_reauthentication_lasts_reauth_ttl(make_provider):
    """After ``session.reauth_ttl`` seconds the session must re-authenticate
    again; the kiosk and login ``amr`` are unchanged by it."""
    from idp.accounts.service import find_by_username
    from idp.authn import totp

    provider = make_provider(session={"reauth_ttl": 1})
    username, password, _ = provider.create_account()
    with provider.app.app_context():
        account = find_by_username(username)
        secret = totp.start_enrolment(provider.runtime, account).secret
        step = pyotp.TOTP(secret).timecode(time.time())
        codes = totp.confirm_enrolment(provider.runtime, account,
                                       pyotp.TOTP(secret).generate_otp(step), None)
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username=username, password=password)
    first = session.post(f"{provider.url}/login", data=fields, allow_redirects=False)
    page = session.get(provider.url + first.headers["Location"])
    session.post(f"{provider.url}/login/otp", data={
        **hidden_inputs(page.text), "action": "recovery", "recovery_code": codes[0]})
    assert reauth_with_app(session, provider.url, password,
                           code=pyotp.TOTP(secret).generate_otp(step + 1)).status_code == 303
    time.sleep(1.1)
    page = session.get(provider.url + SECURITY)
    assert 'data-reauth="needed"' in page.text
    late = _post(session, provider.url, SECURITY, action="regenerate")
    assert late.status_code == 303 and "/account/reauth" in late.headers["Location"]


def test_reauth_next_stays_in_the_console(gw):
    provider, gateway = gw
    username, password, _person = level_2_account(provider, gateway)
    session = _password_session(provider, username, password)
    for target in ("https://evil.example.test/", "//evil.example.test/", "/authorize"):
        page = session.get(f"{provider.url}/account/reauth", params={"next": target})
        assert hidden_inputs(page.text)["next"] == SECURITY


def _lead(html: str) -> str:
    return unescape(re.search(r'<p class="lead">(.*?)</p>', html, re.S).group(1))


def test_the_page_names_the_factor_the_account_has(gw):
    """Regression: the page asked for "your second factor again" also of an
    account without an authenticator, which gives a code to its phone; and
    it said "if the number can receive text messages" of its own confirmed
    number, also after a refused password, when no code had been sent."""
    from connectors.identifiers import mask_phone
    from tests.integration.test_totp import _signed_in_with_recovery_code, enrol

    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    session = _password_session(provider, username, password)
    masked = mask_phone(person.phone)
    page = reauth_page(session, provider.url)
    assert _lead(page.text) == (
        "Changing how your account signs in needs your password and a code sent by text "
        f"message to your confirmed number {masked}. Then you have a few minutes to make "
        "the change.")
    sent = send_reauth_code(session, provider.url)
    notice = f"A six-digit code is on its way to {masked}. It is valid for 5 minutes."
    assert notice in sent.text and "If the number" not in sent.text
    wrong = session.post(f"{provider.url}/account/reauth", data={
        **hidden_inputs(sent.text), "password": "not the password", "sms_code": "000000",
        "action": "verify"})
    assert wrong.status_code == 401 and notice not in wrong.text
    session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    time.sleep(1.1)  # sms.resend_after
    chinese = send_reauth_code(session, provider.url)
    assert _lead(chinese.text) == ("更改账号的登录方式需要再次输入密码和发送到您已确认手机号 "
                                   f"{masked} 的短信验证码。确认后，您有几分钟时间完成更改。")
    assert f"六位验证码已发送到 {masked}，5 分钟内有效。" in chinese.text

    app_user, app_password, _ = provider.create_account()
    _secret, codes = enrol(provider, app_user)
    app_session = _signed_in_with_recovery_code(provider, app_user, app_password, codes[0])
    assert _lead(reauth_page(app_session, provider.url).text) == (
        "Changing how your account signs in needs your password and a code of your "
        "authenticator app again. Then you have a few minutes to make the change.")


def test_the_hold_after_an_sms_reset_ends_in_the_provinces_time(gw):
    """Regression: the refusal gave the end of the hold in UTC, other pages
    in the province's time (``timezone``, Asia/Shanghai)."""
    from datetime import timedelta

    from idp.timeutil import utcnow
    from tests.integration.test_email import _reset_by_sms_at

    provider, gateway = gw
    username, password, _person = level_2_account(provider, gateway)
    reset_at = utcnow().replace(microsecond=0)
    _reset_by_sms_at(provider, username, reset_at)
    hold = provider.runtime.settings["session"]["reauth_hold_after_sms_reset"]
    until = reset_at + timedelta(seconds=hold, hours=8)  # Asia/Shanghai, UTC+8
    session = _password_session(provider, username, password)
    page = reauth_page(session, provider.url)
    assert 'data-reauth="refused"' in page.text
    assert (f"cannot confirm this change until {until:%Y-%m-%d %H:%M} (China Time); if you "
            "need it sooner") in unescape(page.text)
    session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    chinese = reauth_page(session, provider.url).text
    assert f"在 {until:%Y-%m-%d %H:%M}（中国时间） 之前" in chinese
