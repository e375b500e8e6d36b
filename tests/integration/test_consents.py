"""The relying parties an account consented to (/account/apps) and
withdrawing a consent: that client's tokens stop working and it asks
consent again, while other clients keep theirs."""

from __future__ import annotations

import re

import requests
from sqlalchemy import select

from tests.helpers import Browser, callback_params, hidden_inputs, redeem


def _refresh(provider, client, refresh_token: str) -> requests.Response:
    return requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token})


def _userinfo(provider, access_token: str) -> requests.Response:
    return requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {access_token}"})


def _tokens(provider, browser: Browser, client, scope: str, **credentials) -> dict:
    params = browser.login_for_code(client, scope=scope, **credentials)
    tokens = redeem(provider.url, client, params["code"]).json()
    assert "refresh_token" in tokens, tokens
    return tokens


def _section(page: str, client_id: str) -> str | None:
    found = re.search(rf'<section class="consent" data-client-id="{re.escape(client_id)}">'
                      r"(.*?)</section>", page, re.S)
    return found.group(1) if found else None


def _withdraw(browser: Browser, client_id: str) -> requests.Response:
    # The CSRF token of the session, from a console page that always has a form.
    page = browser.session.get(f"{browser.base}/account/security")
    return browser.session.post(f"{browser.base}/account/apps/withdraw", data={
        "csrf_token": hidden_inputs(page.text)["csrf_token"], "client_id": client_id},
        allow_redirects=False)


def _audit(provider, event: str, client_id: str) -> list[dict]:
    from idp.audit.models import AuditEvent
    from idp.extensions import db

    with provider.app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == event, AuditEvent.client_id == client_id)).all()
        result = [row.detail for row in rows]
        db.session.remove()
    return result


def _consented(provider) -> tuple[Browser, object, dict]:
    """A new account signed in through ``browser`` that consented to a new
    untrusted client: ``(browser, client, tokens)``."""
    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    tokens = _tokens(provider, browser, client, "openid offline_access",
                     username=username, password=password)
    return browser, client, tokens


def test_list_and_withdraw_one_consent(provider):
    username, password, _sub = provider.create_account()
    first = provider.create_client(trusted=False)
    second = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    first_tokens = _tokens(provider, browser, first, "openid profile email offline_access",
                           username=username, password=password)
    second_tokens = _tokens(provider, browser, second, "openid email offline_access",
                            username=username, password=password)

    page = browser.session.get(f"{provider.url}/account/apps")
    assert page.status_code == 200
    one, two = _section(page.text, first.client_id), _section(page.text, second.client_id)
    assert one is not None and two is not None
    assert page.text.index(second.client_id) < page.text.index(first.client_id)  # newest first
    first_name = f"Test client {first.redirect_uri.split('/')[3]}"
    assert f"<h2>{first_name}</h2>" in one and "<code>127.0.0.1:9</code>" in one
    listed = re.findall(r'<li data-scope="([^"]+)">([^<]+)</li>', one)
    assert listed == [  # in the consent page's order, in words
        ("openid", "Know who you are (your account identifier)"),
        ("profile", "Your name and username"), ("email", "Your e-mail address"),
        ("offline_access", "Stay connected when you are not using it")]
    assert "Your name and username" not in two
    assert re.search(r"allowed on \d{4}-\d\d-\d\d \d\d:\d\d \(China Time\)", one)
    assert 'href="/account/apps"' in browser.session.get(f"{provider.url}/account").text

    done = _withdraw(browser, first.client_id)
    assert done.status_code == 303 and done.headers["Location"] == "/account/apps"
    page = browser.session.get(f"{provider.url}/account/apps")
    assert (f"Consent withdrawn: {first_name} can no longer use your account, and asks you "
            "again the next time you sign in there.") in page.text
    assert _section(page.text, first.client_id) is None
    assert _section(page.text, second.client_id) is not None

    # The withdrawn client's refresh token and access token stop working...
    refused = _refresh(provider, first, first_tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert _userinfo(provider, first_tokens["access_token"]).status_code == 401
    # ... the other client's do not.
    assert _userinfo(provider, second_tokens["access_token"]).status_code == 200
    assert _refresh(provider, second, second_tokens["refresh_token"]).status_code == 200

    # The next login through the withdrawn client asks consent again (the
    # SSO session is still there: no password); the other one does not.
    asked = browser.go(browser.authorize_url(first, scope="openid profile"), consent="")
    assert asked.status_code == 200 and "/consent" in asked.url
    assert first_name in asked.text
    issued = browser.go(browser.authorize_url(second, scope="openid email"), consent="")
    assert issued.status_code in (302, 303) and "code" in callback_params(issued)

    assert _audit(provider, "consent.withdrawn", first.client_id) == [
        {"scope": "email offline_access openid profile", "grants": 1}]
    assert [d["reason"] for d in _audit(provider, "grant.revoked", first.client_id)] == [
        "consent_withdrawn"]
    assert _audit(provider, "consent.withdrawn", second.client_id) == []

    again = _withdraw(browser, first.client_id)
    assert again.status_code == 303
    assert f"{first_name} has no consent to withdraw." in browser.session.get(
        f"{provider.url}/account/apps").text


def test_only_the_accounts_own_consent_is_withdrawn(provider):
    owner, owner_password, _ = provider.create_account()
    other, other_password, _ = provider.create_account()
    client = provider.create_client(trusted=False)
    owner_browser = Browser(provider.url)
    tokens = _tokens(provider, owner_browser, client, "openid offline_access",
                     username=owner, password=owner_password)
    other_browser = Browser(provider.url)
    other_browser.go(f"{provider.url}/account", username=other, password=other_password)
    done = _withdraw(other_browser, client.client_id)
    assert done.status_code == 303
    assert "has no consent to withdraw." in other_browser.session.get(
        f"{provider.url}/account/apps").text
    assert _refresh(provider, client, tokens["refresh_token"]).status_code == 200
    page = owner_browser.session.get(f"{provider.url}/account/apps")
    assert _section(page.text, client.client_id) is not None


def test_withdrawing_needs_the_form_token_and_a_login(provider):
    browser, client, tokens = _consented(provider)
    forged = browser.session.post(f"{provider.url}/account/apps/withdraw",
                                  data={"client_id": client.client_id}, allow_redirects=False)
    assert forged.status_code == 400 and "csrf" in forged.text
    assert _refresh(provider, client, tokens["refresh_token"]).status_code == 200
    anonymous = requests.get(f"{provider.url}/account/apps", allow_redirects=False)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login?next=/account/apps")


def test_a_client_no_longer_registered_is_still_listed(provider):
    browser, client, _ = _consented(provider)
    from idp.clients.models import Client
    from idp.extensions import db

    with provider.app.app_context():
        db.session.delete(db.session.scalar(select(Client).where(
            Client.client_id == client.client_id)))
        db.session.commit()
        db.session.remove()
    provider.runtime.clients.invalidate(client.client_id)
    page = browser.session.get(f"{provider.url}/account/apps")
    section = _section(page.text, client.client_id)
    assert section is not None and "An application no longer registered" in section
    assert f"<code>{client.client_id}</code>" in section
    assert _withdraw(browser, client.client_id).status_code == 303
    assert _section(browser.session.get(f"{provider.url}/account/apps").text,
                    client.client_id) is None


def test_the_page_in_chinese(provider):
    username, password, _ = provider.create_account()
    browser = Browser(provider.url)
    browser.go(f"{provider.url}/account", username=username, password=password)
    browser.session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    page = browser.session.get(f"{provider.url}/account/apps")
    assert "已授权的应用" in page.text and "您尚未授权任何应用。" in page.text
    assert ('<p id="trusted-not-listed">本省政府部门自己的网站无需您授权即可登录，不在此列出。</p>'
            in page.text)


def test_the_departments_own_sites_are_said_to_be_missing(provider):
    """Regression: after signing in at the demo department sites (trusted
    clients, never asking consent) the page said only "You have not allowed
    any application yet.", as if they did not use the account."""
    username, password, _ = provider.create_account()
    trusted = provider.create_client(trusted=True)
    browser = Browser(provider.url)
    browser.login_for_code(trusted, username, password)
    page = browser.session.get(f"{provider.url}/account/apps").text
    assert _section(page, trusted.client_id) is None
    assert "You have not allowed any application yet." in page
    assert ("<p id=\"trusted-not-listed\">Sites of the province's own departments, which sign "
            "you in without asking for your consent, are not listed.</p>") in page


def test_a_native_app_is_listed_by_its_scheme(provider):
    """A private-use scheme reaches its app whatever "host" follows it
    (RFC 8252 §7.1): the list named that host, the web site's."""
    from tests.helpers import pkce_pair

    username, password, _sub = provider.create_account()
    app = provider.create_client(public=True, trusted=False,
                                 redirect_uri="cn.example.other://rp.example.test/cb")
    browser = Browser(provider.url)
    browser.login_for_code(app, username, password, code_challenge=pkce_pair()[1],
                           code_challenge_method="S256")
    section = _section(browser.session.get(f"{provider.url}/account/apps").text, app.client_id)
    assert "<code>cn.example.other:</code>" in section
    assert "rp.example.test" not in section


def test_consent_time_is_in_the_provinces_time(provider):
    """Regression: the page showed the time of consent in UTC, other pages
    in the province's time (``timezone``, Asia/Shanghai)."""
    from datetime import datetime

    from idp.authorizations.models import Consent
    from idp.extensions import db

    browser, client, _ = _consented(provider)
    with provider.app.app_context():
        consent = db.session.scalar(select(Consent).where(Consent.client_id == client.client_id))
        consent.granted_at = datetime(2026, 1, 1, 16, 30)  # UTC, 00:30 the next day in China
        db.session.commit()
        db.session.remove()
    page = browser.session.get(f"{provider.url}/account/apps").text
    assert "allowed on 2026-01-02 00:30 (China Time)" in _section(page, client.client_id)
    browser.session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    chinese = browser.session.get(f"{provider.url}/account/apps").text
    assert "授权时间 2026-01-02 00:30（中国时间）" in _section(chinese, client.client_id)
