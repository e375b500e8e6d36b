"""'This is a public computer' on the login pages: the SSO cookie then
lives only as long as the browser (no Max-Age, no Expires) and the session
ends after ``session.public_idle_ttl`` seconds unused; a kiosk session
always behaves so."""

from __future__ import annotations

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
        from idp.authn.sessions import load_session

        session = load_session(provider.runtime.store, entered.cookies["idp_sso"])
        assert session.public and session.idle_ttl == 900
        # The kiosk's own 5-minute limit stays the absolute one.
        assert session.expires_at - session.auth_time == 300
