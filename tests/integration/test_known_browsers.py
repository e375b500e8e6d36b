"""Which browsers are known to an account (device cookies, docs/limits.md):
an SMS sign-in makes a browser known for codes to the phone, never for
guesses at the password, at any page that asks for it; a re-authentication
and the console's changes that end the account's sessions leave the
browser that made them known, so its owner does not wait with strangers.
Findings 1 and 3 of the adversarial review of issue 7."""

from __future__ import annotations

import re
import secrets

import pyotp
import pytest
import requests

from connectors.sandbox import read_outbox
from tests.helpers import hidden_inputs
from tests.reauth_support import reauth_with_sms
from tests.sandbox_support import start_gateway_provider


@pytest.fixture(scope="module")
def site(tmp_path_factory, database_url):
    """A provider wired to a sandbox gateway, SMS resends after 1 s and the
    per-IP login limit out of the way (every test comes from 127.0.0.1)."""
    provider, gateway = start_gateway_provider(
        tmp_path_factory, database_url, sms={"resend_after": 1}, gateway={"retries": 0},
        throttle={"ip_failures": 10_000})
    yield provider, gateway
    provider.stop()
    gateway.stop()


def _form(session: requests.Session, url: str, page: requests.Response,
          **fields) -> requests.Response:
    return session.post(url, data={**hidden_inputs(page.text), **fields},
                        allow_redirects=False)


def _number() -> str:
    """A mainland mobile number no other test uses (the sandbox's people,
    whom their registries know, are kept for the tests that need them)."""
    return f"+86139{secrets.randbelow(10**8):08d}"


def _account(provider, phone: str) -> tuple[str, str]:
    """A new account whose verified number is ``phone``: ``(username, password)``."""
    username, password, _ = provider.create_account(verified_phone=phone)
    return username, password


def _login(provider, session: requests.Session, username: str,
           password: str) -> requests.Response:
    page = session.get(f"{provider.url}/login")
    return _form(session, f"{provider.url}/login", page, username=username, password=password)


def _sms_login(provider, gateway, phone: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{provider.url}/login/sms")
    sent = _form(session, f"{provider.url}/login/sms", page, phone=phone, action="send")
    assert sent.status_code == 200
    code = read_outbox(gateway.data_path, phone)[-1]["params"]["code"]
    done = _form(session, f"{provider.url}/login/sms", sent, phone=phone, code=code,
                 action="verify")
    assert done.status_code == 303 and "idp_device" in session.cookies
    return session


def _guesses(provider, username: str, count: int) -> list[int]:
    """A stranger's wrong passwords, from a browser unknown to the account."""
    stranger = requests.Session()
    return [_login(provider, stranger, username, "wrong guess!").status_code
            for _ in range(count)]


def test_an_sms_sign_in_gives_no_password_guesses_at_reauthentication(site):
    """A phone thief signed in by SMS code guesses the password at the
    console's re-authentication: the guesses count with everyone else's
    (the account's five free failures), not against a count of their own."""
    provider, gateway = site
    phone = _number()
    username, _password = _account(provider, phone)
    assert _guesses(provider, username, 3) == [401] * 3
    thief = _sms_login(provider, gateway, phone)
    page = thief.get(f"{provider.url}/account/reauth")
    statuses = [_form(thief, f"{provider.url}/account/reauth", page, password="wrong guess!",
                      sms_code="000000", action="verify").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_a_reauthentication_makes_an_sms_browser_known(site):
    """The owner who signs in by SMS code proves the password at a
    re-authentication: from then on that browser's password counts apart
    from the strangers'."""
    provider, gateway = site
    phone = _number()
    username, password = _account(provider, phone)
    owner = _sms_login(provider, gateway, phone)
    assert reauth_with_sms(owner, provider.url, gateway, phone, password).status_code == 303
    assert _guesses(provider, username, 6) == [401] * 5 + [429]
    assert _login(provider, owner, username, password).status_code == 303


def test_the_browser_that_set_up_an_authenticator_stays_known(site):
    """Setting up an authenticator ends every session, this one too; the
    browser that did it (with the password and a code to the phone) is not
    left to wait with a stranger who guesses meanwhile: its next sign-in
    goes on to the app's code at once."""
    provider, gateway = site
    phone = _number()
    username, password = _account(provider, phone)
    owner = requests.Session()
    assert _login(provider, owner, username, password).status_code == 303
    assert reauth_with_sms(owner, provider.url, gateway, phone, password).status_code == 303
    url = f"{provider.url}/account/security"
    started = _form(owner, url, owner.get(url), action="start")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text)[1]
    confirmed = _form(owner, url, started, action="confirm", code=pyotp.TOTP(secret).now())
    assert confirmed.status_code == 200
    assert owner.get(f"{provider.url}/account", allow_redirects=False).status_code == 302
    assert _guesses(provider, username, 6) == [401] * 5 + [429]
    again = _login(provider, owner, username, password)
    assert again.status_code == 303 and "/login/otp" in again.headers["Location"]


def test_the_browser_that_changed_the_phone_stays_known(site):
    """Replacing the verified number ends every session; the browser that
    replaced it signs in again at once while a stranger waits."""
    provider, gateway = site
    phone, new_phone = _number(), _number()
    username, password = _account(provider, phone)
    owner = requests.Session()
    assert _login(provider, owner, username, password).status_code == 303
    assert reauth_with_sms(owner, provider.url, gateway, phone, password,
                           next_path="/account/phone").status_code == 303
    url = f"{provider.url}/account/phone"
    sent = _form(owner, url, owner.get(url), phone=new_phone, action="send")
    assert sent.status_code == 200
    code = read_outbox(gateway.data_path, new_phone)[-1]["params"]["code"]
    changed = _form(owner, url, sent, phone=new_phone, code=code, password=password,
                    action="verify")
    assert changed.status_code == 303 and "/login" in changed.headers["Location"]
    assert owner.get(f"{provider.url}/account", allow_redirects=False).status_code == 302
    assert _guesses(provider, username, 6) == [401] * 5 + [429]
    assert _login(provider, owner, username, password).status_code == 303
