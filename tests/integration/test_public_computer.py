"""'This is a public computer' on the login pages: the SSO cookie then
lives only as long as the browser (no Max-Age, no Expires) and the session
ends after ``session.public_idle_ttl`` seconds unused; a kiosk session
always behaves so."""

from __future__ import annotations

import re
import time

import requests

from connectors.sandbox import read_outbox
from tests.helpers import Browser, hidden_inputs
from tests.integration.test_kiosk import card_read, possession_account, post
from tests.integration.test_step_up import level_2_account
from tests.integration.test_totp import enrol

LABEL = "This is a public computer (sign me out when I close the browser)"


def sso_set_cookie(response: requests.Response) -> str:
    """The ``Set-Cookie`` header of the SSO cookie in ``response``."""
    headers = [h for h in response.raw.headers.getlist("Set-Cookie")
               if h.startswith("idp_sso=")]
    assert len(headers) == 1, response.raw.headers.getlist("Set-Cookie")
    return headers[0]


def password_login(provider, session: requests.Session, username: str, password: str,
                   public: bool) -> requests.Response:
    page = session.get(f"{provider.url}/login")
    assert LABEL in page.text and 'type="checkbox"' in page.text
    fields = hidden_inputs(page.text)
    fields.update(username=username, password=password)
    if public:
        fields["public"] = "y"
    return session.post(f"{provider.url}/login", data=fields, allow_redirects=False)


def signed_in(provider, session: requests.Session) -> bool:
    return "/account" in session.get(f"{provider.url}/").text


def test_public_computer_cookie_ends_with_the_browser(provider):
    username, password, _ = provider.create_account()
    shared = requests.Session()
    done = password_login(provider, shared, username, password, public=True)
    assert done.status_code == 303
    cookie = sso_set_cookie(done)
    assert "max-age" not in cookie.lower() and "expires" not in cookie.lower()
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert signed_in(provider, shared)
    # Without the box: the cookie lives as long as the session (8 hours).
    own = password_login(provider, requests.Session(), username, password, public=False)
    assert "Max-Age=28800" in sso_set_cookie(own)


def test_public_session_ends_when_idle(make_provider):
    provider = make_provider(session={"public_idle_ttl": 2})
    username, password, _ = provider.create_account()
    client = provider.create_client()
    shared, own = requests.Session(), requests.Session()
    assert password_login(provider, shared, username, password, public=True).status_code == 303
    assert password_login(provider, own, username, password, public=False).status_code == 303
    assert signed_in(provider, shared) and signed_in(provider, own)
    time.sleep(3.2)
    assert not signed_in(provider, shared)
    browser = Browser(provider.url, shared)
    response = browser.go(browser.authorize_url(client, prompt="none"))
    assert "error=login_required" in response.headers["Location"]
    # A session on one's own computer has no idle limit.
    assert signed_in(provider, own)


def test_public_session_lives_on_while_used(make_provider):
    provider = make_provider(session={"public_idle_ttl": 4})
    username, password, _ = provider.create_account()
    shared = requests.Session()
    assert password_login(provider, shared, username, password, public=True).status_code == 303
    # Used every 2 seconds, it outlives its 4-second idle limit ...
    for _ in range(3):
        time.sleep(2)
        assert signed_in(provider, shared)
    # ... and ends once left alone.
    time.sleep(5.2)
    assert not signed_in(provider, shared)


def test_the_choice_survives_the_second_factor(provider):
    username, password, _ = provider.create_account()
    _secret, codes = enrol(provider, username)
    shared = requests.Session()
    first = password_login(provider, shared, username, password, public=True)
    assert first.status_code == 303 and "/login/otp" in first.headers["Location"]
    assert "idp_sso=" not in first.headers.get("Set-Cookie", "")
    page = shared.get(provider.url + first.headers["Location"])
    fields = hidden_inputs(page.text)
    fields.update(action="recovery", recovery_code=codes[0])
    done = shared.post(f"{provider.url}/login/otp", data=fields, allow_redirects=False)
    assert done.status_code == 303
    cookie = sso_set_cookie(done)
    assert "max-age" not in cookie.lower() and "expires" not in cookie.lower()


def test_sms_login_on_a_public_computer(gw):
    provider, gateway = gw
    _username, _password, person = level_2_account(provider, gateway)
    shared = requests.Session()
    page = shared.get(f"{provider.url}/login/sms")
    fields = hidden_inputs(page.text)
    fields.update(phone=person.phone, action="send")
    sent = shared.post(f"{provider.url}/login/sms", data=fields)
    assert sent.status_code == 200 and LABEL in sent.text
    code = read_outbox(gateway.data_path, person.phone)[-1]["params"]["code"]
    fields = hidden_inputs(sent.text)
    fields.update(phone=person.phone, code=code, action="verify", public="y")
    done = shared.post(f"{provider.url}/login/sms", data=fields, allow_redirects=False)
    assert done.status_code == 303
    cookie = sso_set_cookie(done)
    assert "max-age" not in cookie.lower() and "expires" not in cookie.lower()


def test_kiosk_session_is_always_a_public_one(gw):
    from joserfc.jwk import ECKey

    provider, gateway = gw
    key = ECKey.generate_key("P-256", parameters={"kid": "kiosk-public"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]}, kiosk=True)
    _username, _password, person = possession_account(provider, gateway)
    answer = post(provider, client, key, card_read(provider, client, key, person))
    assert answer.status_code == 200, answer.text
    entered = requests.get(answer.json()["login_url"], allow_redirects=False)
    assert entered.status_code == 302  # a GET: an ordinary redirect
    cookie = sso_set_cookie(entered)
    assert "max-age" not in cookie.lower() and "expires" not in cookie.lower()
    with provider.app.app_context():
        from idp.sessions import load_session

        session = load_session(provider.runtime.store, entered.cookies["idp_sso"])
        assert session.public and session.idle_ttl == 900
        # The kiosk's own 5-minute limit stays the absolute one.
        assert session.expires_at - session.auth_time == 300


FIXED = ("This browser is used as a public computer: you will be signed out when you close "
         "it, or after a while unused. To change this, sign out first.")


def public_box(page: requests.Response) -> str:
    return re.search(r'<input[^>]*\bid="public"[^>]*>', page.text).group(0)


def test_logging_in_again_on_a_public_computer_stays_public(provider):
    """Regression (issue 7 review, the kiosk finding's note): logging in
    again in a browser whose session is a public computer's (prompt=login,
    max_age, the next person at the computer) showed the box unticked, and
    the login became an 8-hour session remembered by a device cookie. The
    box is now shown ticked and fixed, saying why, and the login stays a
    public computer's, whatever is posted; signing out first ends this."""
    from idp.sessions import load_session

    username, password, _ = provider.create_account()
    other, other_password, _ = provider.create_account()
    shared = requests.Session()
    assert password_login(provider, shared, username, password, public=True).status_code == 303
    page = shared.get(f"{provider.url}/login")
    box = public_box(page)
    assert "checked" in box and "disabled" in box and FIXED in page.text
    for who, secret in ((username, password), (other, other_password)):
        again = password_login(provider, shared, who, secret, public=False)
        assert again.status_code == 303
        cookie = sso_set_cookie(again)
        assert "max-age" not in cookie.lower() and "expires" not in cookie.lower()
        assert not any(h.startswith("idp_device=")
                       for h in again.raw.headers.getlist("Set-Cookie"))
        with provider.app.app_context():
            assert load_session(provider.runtime.store, shared.cookies["idp_sso"]).public
    chinese = shared.get(f"{provider.url}/login", headers={"Accept-Language": "zh-CN"})
    assert "此浏览器正作为公共电脑使用" in chinese.text
    # Signed out, the browser asks afresh.
    page = shared.get(f"{provider.url}/logout")
    assert shared.post(f"{provider.url}/logout", data={**hidden_inputs(page.text),
                                                      "confirm": "yes"}).status_code == 200
    page = shared.get(f"{provider.url}/login")
    assert "disabled" not in public_box(page) and FIXED not in page.text
    own = password_login(provider, shared, username, password, public=False)
    assert "Max-Age=28800" in sso_set_cookie(own)


def test_registering_by_phone_from_the_kiosk_link_page_is_public(gw):
    """The same for a registration by phone (and the SMS sign-in page) in a
    kiosk's browser where a card waits to be linked: a public computer's
    session, no device cookie."""
    from joserfc.jwk import ECKey

    from idp.sessions import load_session
    from tests.sandbox_support import fresh_person

    provider, gateway = gw
    key = ECKey.generate_key("P-256", parameters={"kid": "kiosk-link-public"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]}, kiosk=True)
    person = fresh_person(gateway)
    answer = post(provider, client, key, card_read(provider, client, key, person))
    assert answer.status_code == 200 and answer.json()["linked"] is False, answer.text
    kiosk = requests.Session()
    assert kiosk.get(answer.json()["login_url"], allow_redirects=False).status_code == 303
    page = kiosk.get(f"{provider.url}/login/sms")
    sent = kiosk.post(f"{provider.url}/login/sms", data={
        **hidden_inputs(page.text), "phone": person.phone, "action": "send"})
    assert sent.status_code == 200 and "disabled" in public_box(sent) and FIXED in sent.text
    page = kiosk.get(f"{provider.url}/register/sms")
    sent = kiosk.post(f"{provider.url}/register/sms", data={
        **hidden_inputs(page.text), "phone": person.phone, "action": "send"})
    assert sent.status_code == 200
    code = read_outbox(gateway.data_path, person.phone)[-1]["params"]["code"]
    done = kiosk.post(f"{provider.url}/register/sms", allow_redirects=False, data={
        **hidden_inputs(sent.text), "phone": person.phone, "code": code, "action": "verify",
        "username": f"kiosk{time.time_ns() % 10**9}", "password": "plum-blossom-river",
        "confirm": "plum-blossom-river"})
    assert done.status_code == 303, done.text[:300]
    cookie = sso_set_cookie(done)
    assert "max-age" not in cookie.lower() and "expires" not in cookie.lower()
    assert not any(h.startswith("idp_device=") for h in done.raw.headers.getlist("Set-Cookie"))
    with provider.app.app_context():
        assert load_session(provider.runtime.store, kiosk.cookies["idp_sso"]).public
