"""SSO session behaviour: prompt/max_age/id_token_hint on authorize, consent,
and RP-initiated logout (OpenID RP-Initiated Logout 1.0)."""

from __future__ import annotations

import re
import time
from html import unescape

import requests

from tests.helpers import Browser, hidden_inputs, redeem


def _login(provider, client=None):
    username, password, sub = provider.create_account()
    client = client or provider.create_client()
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password)["code"]
    return browser, client, redeem(provider.url, client, code).json(), (username, password)


def test_prompt_none_with_session_issues_code(provider):
    browser, client, _tokens, _ = _login(provider)
    response = browser.go(browser.authorize_url(client, prompt="none"))
    assert "code=" in response.headers["Location"]


def test_prompt_none_combined_is_invalid(provider):
    browser, client, _tokens, _ = _login(provider)
    response = browser.go(browser.authorize_url(client, prompt="none login"))
    assert "error=invalid_request" in response.headers["Location"]


def test_max_age_zero_forces_login(provider):
    browser, client, _tokens, creds = _login(provider)
    time.sleep(1.1)
    response = browser.go(browser.authorize_url(client, max_age="0"))
    assert response.status_code == 200 and "/login" in response.url
    response = browser.go(browser.authorize_url(client, max_age="0", prompt="none"))
    assert "error=login_required" in response.headers["Location"]
    params = browser.login_for_code(client, *creds, max_age="0")
    assert "code" in params


def test_max_age_zero_forces_login_within_the_same_second(provider, monkeypatch):
    """max_age=0 is prompt=login (OIDC Core §3.1.2.1); within the second of
    the last login, epoch() - auth_time > 0 was false and a code was issued."""
    from idp.oidc import authorize
    from idp.sessions import load_session

    browser, client, _tokens, creds = _login(provider)
    sso = load_session(provider.runtime.store, browser.session.cookies["idp_sso"])
    monkeypatch.setattr(authorize, "epoch", lambda: sso.auth_time)
    response = browser.go(browser.authorize_url(client, max_age="0"))
    assert response.status_code == 200 and "/login" in response.url
    response = browser.go(browser.authorize_url(client, max_age="0", prompt="none"))
    assert "error=login_required" in response.headers["Location"]
    # The login made for this request satisfies it.
    assert "code" in browser.login_for_code(client, *creds, max_age="0")
    # max_age=1 in the same second is still met.
    response = browser.go(browser.authorize_url(client, max_age="1", prompt="none"))
    assert "code=" in response.headers["Location"]


def test_id_token_hint_for_other_user_needs_login(provider):
    browser, client, tokens, _ = _login(provider)
    other_browser, *_ = _login(provider, client)
    response = other_browser.go(other_browser.authorize_url(
        client, id_token_hint=tokens["id_token"], prompt="none"))
    assert "error=login_required" in response.headers["Location"]
    response = browser.go(browser.authorize_url(client, id_token_hint=tokens["id_token"],
                                                prompt="none"))
    assert "code=" in response.headers["Location"]


def test_login_hint_prefills_username(provider):
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, login_hint="someone"))
    assert 'value="someone"' in page.text


def test_consent_is_asked_once_and_remembered(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    first = browser.go(browser.authorize_url(client), username=username, password=password,
                       consent="")
    assert first.status_code == 200 and "/consent" in first.url
    assert 'data-scope="email"' in first.text
    fields = hidden_inputs(first.text)
    fields["decision"] = "approve"
    done = browser.session.post(f"{provider.url}/consent", data=fields, allow_redirects=False)
    done = browser.go(done.headers["Location"] if done.headers["Location"].startswith("http")
                      else provider.url + done.headers["Location"])
    assert "code=" in done.headers["Location"]
    again = browser.go(browser.authorize_url(client, prompt="none"))
    assert "code=" in again.headers["Location"]
    more = browser.go(browser.authorize_url(client, prompt="none", scope="openid phone"))
    assert "error=consent_required" in more.headers["Location"]
    asked = browser.go(browser.authorize_url(client, prompt="consent"), consent="")
    assert "/consent" in asked.url


def test_consent_denied(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    response = browser.go(browser.authorize_url(client, state="S9"), username=username,
                          password=password, consent="deny")
    assert response.headers["Location"].startswith(client.redirect_uri)
    assert "error=access_denied" in response.headers["Location"]
    assert "state=S9" in response.headers["Location"]


def test_a_refusal_is_not_sent_to_a_redirect_uri_removed_meanwhile(provider):
    """The answer went to the redirect URI the request was validated with,
    although an operator had removed it from the registration while the
    consent page was open (attack of issue 8, F6; RFC 9700 §4.11): it is
    shown on a page instead."""
    import dataclasses

    from idp.clients.service import find_client, registered_metadata, update_client

    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False,
                                    redirect_uri="https://rp.example.test/old-callback")
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, state="S9"), username=username,
                      password=password, consent="")
    assert "/consent" in page.url
    with provider.app.app_context():
        metadata = registered_metadata(find_client(client.client_id))
        update_client(provider.runtime, client.client_id, dataclasses.replace(
            metadata, redirect_uris=("https://rp.example.test/new-callback",)))
    fields = hidden_inputs(page.text)
    fields["decision"] = "deny"
    denied = browser.session.post(f"{provider.url}/consent", data=fields,
                                  allow_redirects=False)
    assert denied.status_code == 400 and "Location" not in denied.headers
    assert "access_denied" in denied.text and "S9" not in denied.text


def test_consent_post_without_csrf_is_refused(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client), username=username, password=password,
                      consent="")
    fields = hidden_inputs(page.text)
    fields.pop("csrf_token")
    fields["decision"] = "approve"
    response = browser.session.post(f"{provider.url}/consent", data=fields,
                                    allow_redirects=False)
    assert response.status_code == 400


def test_logout_with_hint_redirects_to_registered_uri(provider):
    browser, client, tokens, _ = _login(provider)
    response = browser.session.get(f"{provider.url}/logout", params={
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": client.post_logout_redirect_uri, "state": "bye"},
        allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == client.post_logout_redirect_uri + "?state=bye"
    # The SSO session is over for every client.
    after = browser.go(browser.authorize_url(client, prompt="none"))
    assert "error=login_required" in after.headers["Location"]


def test_logout_to_unregistered_uri_is_refused(provider):
    browser, client, tokens, _ = _login(provider)
    response = browser.session.get(f"{provider.url}/logout", params={
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://evil.example.test/"}, allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers
    still = browser.go(browser.authorize_url(client, prompt="none"))
    assert "code=" in still.headers["Location"]


def test_logout_without_hint_asks_for_confirmation(provider):
    browser, client, _tokens, _ = _login(provider)
    page = browser.session.get(f"{provider.url}/logout")
    assert page.status_code == 200 and 'name="confirm"' in page.text
    still = browser.go(browser.authorize_url(client, prompt="none"))
    assert "code=" in still.headers["Location"]
    fields = hidden_inputs(page.text)
    fields["confirm"] = "yes"
    done = browser.session.post(f"{provider.url}/logout", data=fields, allow_redirects=False)
    assert done.status_code == 200
    after = browser.go(browser.authorize_url(client, prompt="none"))
    assert "error=login_required" in after.headers["Location"]


def test_logout_confirmation_says_what_ends_and_can_be_cancelled(provider):
    """Regression: the page promised a sign-out of "all government
    services", though department sites keep their own sessions, and had no
    way back."""
    browser, client, _tokens, _ = _login(provider)
    page = browser.session.get(f"{provider.url}/logout", params={"client_id": client.client_id,
                                                                "state": "s"})
    with provider.app.app_context():
        name = provider.runtime.clients.get(client.client_id).name
    text = unescape(re.sub(r"<[^>]+>", "", page.text))
    assert f"{name} asks to sign you out of the provincial account." in text
    assert ("The government portals you used in this browser are told, and sign you out "
            "too.") in text
    assert "all government services" not in text
    assert '<a id="cancel" href="/">Cancel</a>' in page.text
    # Cancelling is going home: still signed in.
    assert browser.session.get(f"{provider.url}/").status_code == 200
    still = browser.go(browser.authorize_url(client, prompt="none"))
    assert "code=" in still.headers["Location"]
    browser.session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    chinese = browser.session.get(f"{provider.url}/logout").text
    assert "<p>是否退出全省统一账号？</p>" in chinese
    assert "<p>您在此浏览器中使用过的政务网站也会收到通知，并同时退出登录。</p>" in chinese
    assert '<a id="cancel" href="/">取消</a>' in chinese


def test_after_sign_out_the_console_sends_to_the_login_and_back(provider):
    """Regression: /account sent to /login?next=/account? (a trailing "?")."""
    browser, _client, _tokens, _ = _login(provider)
    page = browser.session.get(f"{provider.url}/logout")
    done = browser.session.post(f"{provider.url}/logout",
                                data={**hidden_inputs(page.text), "confirm": "yes"})
    assert done.status_code == 200
    account = browser.session.get(f"{provider.url}/account", allow_redirects=False)
    assert account.status_code == 302 and account.headers["Location"] == "/login?next=/account"
    reauth = browser.session.get(f"{provider.url}/account/reauth?next=/account/phone",
                                 allow_redirects=False)
    assert reauth.headers["Location"] == "/login?next=/account/reauth?next%3D/account/phone"


def test_logout_confirmation_needs_csrf(provider):
    browser, client, _tokens, _ = _login(provider)
    response = browser.session.post(f"{provider.url}/logout", data={"confirm": "yes"})
    assert response.status_code == 400
    still = browser.go(browser.authorize_url(client, prompt="none"))
    assert "code=" in still.headers["Location"]


def test_logout_with_stale_session_cookie(provider):
    response = requests.get(f"{provider.url}/logout", cookies={"idp_sso": "not-a-session"})
    assert response.status_code == 200


def test_sid_claim_is_not_the_session_cookie(provider):
    """Security regression: the sid a relying party sees must not log anyone in."""
    import jwt as pyjwt

    browser, client, tokens, _ = _login(provider)
    sid = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["sid"]
    assert sid != browser.session.cookies["idp_sso"]
    attacker = Browser(provider.url)
    attacker.session.cookies.set("idp_sso", sid, domain="127.0.0.1")
    response = attacker.go(attacker.authorize_url(client, prompt="none"))
    assert "error=login_required" in response.headers["Location"]


def test_new_login_ends_the_previous_session(provider):
    browser, client, _tokens, creds = _login(provider)
    old = browser.session.cookies["idp_sso"]
    browser.login_for_code(client, *creds, prompt="login")
    assert browser.session.cookies["idp_sso"] != old
    stale = Browser(provider.url)
    stale.session.cookies.set("idp_sso", old, domain="127.0.0.1")
    response = stale.go(stale.authorize_url(client, prompt="none"))
    assert "error=login_required" in response.headers["Location"]
