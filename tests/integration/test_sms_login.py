"""Sign-in with an SMS code, the code delivered through the sandbox gateway
over real HTTP and read from its outbox."""

from __future__ import annotations

import re
import time

import jwt as pyjwt
import pytest
import requests

from connectors.sandbox import read_outbox
from tests.helpers import Browser, hidden_inputs, redeem
from tests.sandbox_support import KEY, SECRET, start_sandbox

PHONE = "+8613900000031"


@pytest.fixture(scope="module")
def sms_provider(tmp_path_factory, database_url):
    from tests.conftest import start_provider

    gateway = start_sandbox(tmp_path_factory.mktemp("sms-sandbox"))
    provider = start_provider(tmp_path_factory.mktemp("sms-idp"), database_url,
                              gateway={"url": gateway.url, "access_key": KEY, "secret": SECRET},
                              sms={"resend_after": 1})
    yield provider, gateway
    provider.stop()
    gateway.stop()


def _account_with_phone(provider, phone: str, verified: bool = True):
    from idp.accounts.service import find_by_username, set_phone_number
    from idp.extensions import db

    username, password, sub = provider.create_account()
    with provider.app.app_context():
        set_phone_number(provider.runtime, find_by_username(username), phone, verified)
        db.session.commit()
    return sub


def _send(session, provider, phone, i=""):
    page = session.get(f"{provider.url}/login/sms", params={"i": i} if i else None)
    fields = hidden_inputs(page.text)
    fields.update(phone=phone, action="send")
    return session.post(f"{provider.url}/login/sms", data=fields)


def _verify(session, provider, page, phone, code):
    fields = hidden_inputs(page.text)
    fields.update(phone=phone, code=code, action="verify")
    return session.post(f"{provider.url}/login/sms", data=fields, allow_redirects=False)


def test_sms_sign_in_in_the_authorization_flow(sms_provider):
    provider, gateway = sms_provider
    sub = _account_with_phone(provider, PHONE)
    client = provider.create_client()
    browser = Browser(provider.url)
    login = browser.go(browser.authorize_url(client, nonce="n"))
    assert "/login/sms" in login.text  # the password page offers SMS sign-in
    interaction = hidden_inputs(login.text)["i"]
    page = _send(browser.session, provider, "139 0000 0031", interaction)
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
    code = read_outbox(gateway.data_path, PHONE)[-1]["params"]["code"]
    done = _verify(browser.session, provider, page, "13900000031", code)
    assert done.status_code == 303
    callback = browser.go(provider.url + done.headers["Location"])
    params = requests.utils.urlparse(callback.headers["Location"]).query
    code_param = dict(p.split("=", 1) for p in params.split("&"))["code"]
    tokens = redeem(provider.url, client, code_param).json()
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["sub"] == sub and claims["amr"] == ["sms"]


def test_same_answer_with_or_without_an_account(sms_provider):
    provider, gateway = sms_provider
    _account_with_phone(provider, "+8613900000032")
    known = _send(requests.Session(), provider, "13900000032")
    unknown = _send(requests.Session(), provider, "13900000033")
    assert known.status_code == unknown.status_code == 200

    def page_shape(response, number):
        text = re.sub(r'value="[^"]*"', 'value=""', response.text)
        return text.replace(number, "N")

    assert page_shape(known, "13900000032") == page_shape(unknown, "13900000033")
    # The code goes out either way; without an account it signs nobody in.
    code = read_outbox(gateway.data_path, "+8613900000033")[-1]["params"]["code"]
    session = requests.Session()
    page = _send(session, provider, "13900000034")
    assert _verify(session, provider, page, "13900000033", code).status_code == 401


def test_wrong_code_and_unverified_number(sms_provider):
    provider, gateway = sms_provider
    _account_with_phone(provider, "+8613900000035", verified=False)
    session = requests.Session()
    page = _send(session, provider, "13900000035")
    code = read_outbox(gateway.data_path, "+8613900000035")[-1]["params"]["code"]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert _verify(session, provider, page, "13900000035", wrong).status_code == 401
    # Right code, but the number was never verified: no sign-in.
    assert _verify(session, provider, page, "13900000035", code).status_code == 401


def test_errors_are_shown_and_input_kept(sms_provider):
    provider, _ = sms_provider
    session = requests.Session()
    bad = _send(session, provider, "010-12345678")
    assert bad.status_code == 400 and "010-12345678" in bad.text
    first = _send(session, provider, "13900000036")
    assert first.status_code == 200
    again = _send(session, provider, "13900000036")
    assert again.status_code == 429 and "13900000036" in again.text
    # Regression: the refused resend hid the code field, though the code
    # already sent was still valid.
    assert 'autocomplete="one-time-code"' in again.text


def test_gateway_outage_is_explained(make_provider):
    down = make_provider(gateway={"url": "http://127.0.0.1:9", "access_key": KEY,
                                  "secret": SECRET, "retries": 0, "timeout": 1.0})
    page = _send(requests.Session(), down, "13900000037")
    assert page.status_code == 503 and "unavailable" in page.text
    assert "13900000037" in page.text


def test_without_gateway_sms_is_not_offered(provider):
    page = requests.get(f"{provider.url}/login")
    assert "/login/sms" not in page.text
    assert "not available" in requests.get(f"{provider.url}/login/sms").text


def _register_send(session, provider, phone):
    page = session.get(f"{provider.url}/register/sms")
    fields = hidden_inputs(page.text)
    fields.update(phone=phone, action="send")
    return session.post(f"{provider.url}/register/sms", data=fields)


def _register_verify(session, provider, page, phone, code, username, password="long enough pw"):
    fields = hidden_inputs(page.text)
    fields.update(phone=phone, code=code, username=username, password=password,
                  confirm=password, name="Phone Person", action="verify")
    return session.post(f"{provider.url}/register/sms", data=fields, allow_redirects=False)


def test_registration_by_phone(sms_provider):
    import uuid

    from idp.accounts.service import find_by_phone

    provider, gateway = sms_provider
    session = requests.Session()
    page = _register_send(session, provider, "13900000041")
    assert page.status_code == 200
    code = read_outbox(gateway.data_path, "+8613900000041")[-1]["params"]["code"]
    # A bad username is reported without using up the code.
    bad = _register_verify(session, provider, page, "13900000041", code, "x")
    assert bad.status_code == 400
    username = "ph" + uuid.uuid4().hex[:8]
    done = _register_verify(session, provider, bad, "13900000041", code, username)
    assert done.status_code == 303 and "idp_sso" in done.headers["Set-Cookie"]
    with provider.app.app_context():
        account = find_by_phone(provider.runtime, "+8613900000041")
        assert account.username == username and account.phone_number_verified
    # The number now signs in by SMS too, and cannot register again.
    again = requests.Session()
    page = _register_send(again, provider, "13900000041")
    for _ in range(30):  # the resend wait (resend_after = 1 s here) may not be over
        if page.status_code == 200:
            break
        time.sleep(0.2)
        page = _register_send(again, provider, "13900000041")
    assert page.status_code == 200
    code = read_outbox(gateway.data_path, "+8613900000041")[-1]["params"]["code"]
    # Without the code, a taken number is not told apart from a free one.
    guess = _register_verify(again, provider, page, "13900000041", "000000"
                             if code != "000000" else "111111", "other" + username)
    assert guess.status_code == 401 and "another account" not in guess.text
    taken = _register_verify(again, provider, page, "13900000041", code, "other" + username)
    assert taken.status_code == 400 and "another account" in taken.text


def test_registration_by_phone_with_wrong_code(sms_provider):
    import uuid

    provider, _gateway = sms_provider
    session = requests.Session()
    page = _register_send(session, provider, "13900000042")
    refused = _register_verify(session, provider, page, "13900000042", "000000",
                               "ph" + uuid.uuid4().hex[:8])
    assert refused.status_code == 401
