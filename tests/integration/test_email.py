"""The account's e-mail address verified by a link, end to end: the
console sends the link through the sandbox's SMTP receiver over real SMTP,
the link is opened in another browser, and userinfo's ``email_verified``
follows. Single use, only the account it was made for, no change on GET,
limits, the password for a new address, failures of the relay."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.helpers import Browser, hidden_inputs, redeem
from tests.sandbox_support import start_gateway_provider

LINK = re.compile(r"http://127\.0\.0\.1:\d+/account/email/confirm/[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory, database_url):
    provider, gateway = start_gateway_provider(
        tmp_path_factory, database_url, gateway={"retries": 0},
        mail={"resend_after": 1, "per_account_daily": 4, "per_address_daily": 4,
              "per_ip_hourly": 1000})
    yield provider, gateway
    provider.stop()
    gateway.stop()


def signed_in(provider, **account) -> tuple[Browser, str, str]:
    """A browser signed in to the console of a new account: ``(browser, username, password)``."""
    username, password, _sub = provider.create_account(**account)
    browser = Browser(provider.url)
    page = browser.go(f"{provider.url}/account", username=username, password=password)
    assert page.status_code == 200 and 'id="email"' in page.text, page.text[:300]
    return browser, username, password


def send_link(browser: Browser, address: str, password: str = "", **headers):
    page = browser.session.get(f"{browser.base}/account/email")
    return browser.session.post(f"{browser.base}/account/email", headers=headers,
                                allow_redirects=False, data={
                                    **hidden_inputs(page.text), "email": address,
                                    "password": password})


def csrf_fields(browser: Browser) -> dict[str, str]:
    """A CSRF token of the browser's session (from a console page that has a form)."""
    return hidden_inputs(browser.session.get(f"{browser.base}/account/security").text)


def last_link(gateway, address: str) -> str:
    return LINK.findall(gateway.mails(address)[-1]["body"])[-1]


def confirm(session: requests.Session, link: str) -> requests.Response:
    page = session.get(link)
    assert page.status_code == 200, page.text[:300]
    return session.post(link, data=hidden_inputs(page.text), allow_redirects=False)


def account_email(provider, username: str) -> tuple[str | None, bool]:
    from idp.accounts.service import find_by_username
    from idp.extensions import db

    with provider.app.app_context():
        account = find_by_username(username)
        result = account.email, account.email_verified
        db.session.remove()
    return result


def userinfo(provider, client, username, password) -> dict:
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password, scope="openid email")["code"]
    token = redeem(provider.url, client, code).json()["access_token"]
    return requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {token}"}).json()


def test_change_by_link_in_another_browser(gw):
    provider, gateway = gw
    client = provider.create_client()
    browser, username, password = signed_in(provider, email="old.address@example.test")
    claims = userinfo(provider, client, username, password)
    assert (claims["email"], claims["email_verified"]) == ("old.address@example.test", False)

    sent = send_link(browser, "New.Person@Example.TEST", password)
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/account/email")
    page = browser.session.get(f"{provider.url}/account/email")
    assert "We sent a link to New.Person@example.test" in page.text
    assert 'id="pending-email"' in page.text
    [mail] = gateway.mails("New.Person@example.test")
    assert mail["subject"] == "Confirm your e-mail address"
    assert mail["mail_from"] == "no-reply@idp.example.test"
    assert username in mail["body"] and "New.Person@example.test" in mail["body"]
    link = last_link(gateway, "New.Person@example.test")
    assert link.startswith(f"{provider.url}/account/email/confirm/")

    # Until the link is confirmed the old address stays, in the console and for clients.
    assert account_email(provider, username) == ("old.address@example.test", False)

    # Another browser, signed in nowhere: opening the link (as a mail scanner
    # would) shows what would change and changes nothing.
    other = requests.Session()
    shown = other.get(link)
    assert shown.status_code == 200
    assert "New.Person@example.test" in shown.text and username in shown.text
    assert account_email(provider, username) == ("old.address@example.test", False)
    assert other.get(link).status_code == 200  # still unused

    done = other.post(link, data=hidden_inputs(shown.text), allow_redirects=False)
    assert done.status_code == 303 and done.headers["Location"] == "/"
    home = other.get(f"{provider.url}/")
    assert (f"New.Person@example.test is now the verified e-mail address of the account "
            f"{username}.") in home.text
    assert account_email(provider, username) == ("New.Person@example.test", True)
    claims = userinfo(provider, client, username, password)
    assert (claims["email"], claims["email_verified"]) == ("New.Person@example.test", True)

    # The link works once.
    again = other.get(link)
    assert again.status_code == 400 and "This link is invalid" in again.text
    replay = requests.post(link, data=hidden_inputs(shown.text))
    assert replay.status_code == 400
    page = browser.session.get(f"{provider.url}/account")
    shown_email = re.search(r'<dd id="email">(.*?)</dd>', page.text, re.S).group(1)
    assert "New.Person@example.test" in shown_email and "not verified" not in shown_email

    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.extensions import db

    with provider.app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "account.email_verified").order_by(
            AuditEvent.id.desc())).first()
        assert event.detail == {"address": "N***@example.test", "changed": True}
        db.session.remove()


def test_a_link_changes_only_its_own_account(gw):
    provider, gateway = gw
    owner, owner_name, owner_password = signed_in(provider, email="owner@example.test")
    send_link(owner, "owner.new@example.test", owner_password)
    link = last_link(gateway, "owner.new@example.test")
    # Someone else opens it in a browser signed in to their own account.
    intruder, intruder_name, _ = signed_in(provider, email="intruder@example.test")
    page = intruder.session.get(link)
    assert f"You are signed in here as {intruder_name}" in page.text
    done = intruder.session.post(link, data=hidden_inputs(page.text), allow_redirects=False)
    assert done.status_code == 303 and done.headers["Location"] == "/"
    assert account_email(provider, owner_name) == ("owner.new@example.test", True)
    assert account_email(provider, intruder_name) == ("intruder@example.test", False)


def test_a_newer_link_replaces_the_older(gw):
    provider, gateway = gw
    browser, username, password = signed_in(provider)
    assert send_link(browser, "first@example.test", password).status_code == 303
    first = last_link(gateway, "first@example.test")
    time.sleep(1.1)  # resend_after
    assert send_link(browser, "second@example.test", password).status_code == 303
    second = last_link(gateway, "second@example.test")
    assert requests.get(first).status_code == 400
    assert confirm(requests.Session(), second).status_code == 303
    assert account_email(provider, username) == ("second@example.test", True)


def test_a_new_address_needs_the_password(gw):
    provider, gateway = gw
    browser, username, password = signed_in(provider, email="mine@example.test")
    for given in ("", "wrong password"):
        refused = send_link(browser, "thief@example.test", given)
        assert refused.status_code == 401 and "The password is incorrect." in refused.text
        assert 'value="thief@example.test"' in refused.text  # what was typed is kept
        if given:
            assert given not in refused.text
    assert gateway.mails("thief@example.test") == []
    # The address the account already has is verified without it.
    sent = send_link(browser, "mine@example.test")
    assert sent.status_code == 303
    assert confirm(requests.Session(), last_link(gateway, "mine@example.test")).status_code == 303
    assert account_email(provider, username) == ("mine@example.test", True)
    # Verified already: nothing to send.
    time.sleep(1.1)
    again = send_link(browser, "mine@example.test")
    assert again.status_code == 400
    assert "This is already your verified e-mail address." in again.text


def test_a_malformed_address_is_explained_and_kept(gw):
    provider, gateway = gw
    browser, _, password = signed_in(provider)
    refused = send_link(browser, "not-an-address", password)
    assert refused.status_code == 400
    assert "This is not a valid e-mail address." in refused.text
    assert 'value="not-an-address"' in refused.text
    assert password not in refused.text


def test_sends_are_limited(gw):
    provider, gateway = gw
    browser, _, password = signed_in(provider)
    assert send_link(browser, "limit1@example.test", password).status_code == 303
    wait = send_link(browser, "limit1@example.test", password)
    assert wait.status_code == 429
    assert "Please wait 1 minutes before asking for another link." in wait.text
    for n in (2, 3, 4):
        time.sleep(1.1)
        assert send_link(browser, f"limit{n}@example.test", password).status_code == 303
    time.sleep(1.1)
    over = send_link(browser, "limit5@example.test", password)
    assert over.status_code == 429 and gateway.mails("limit5@example.test") == []
    # Per address: other accounts cannot flood one mailbox either.
    for n in range(4):
        other, _, other_password = signed_in(provider)
        status = send_link(other, "flooded@example.test", other_password).status_code
        assert status == 303, n
    other, _, other_password = signed_in(provider)
    assert send_link(other, "flooded@example.test", other_password).status_code == 429
    assert len(gateway.mails("flooded@example.test")) == 4


def test_sends_are_limited_per_ip(tmp_path_factory, database_url):
    provider, gateway = start_gateway_provider(tmp_path_factory, database_url,
                                               mail={"per_ip_hourly": 2})
    try:
        for n in range(2):
            browser, _, password = signed_in(provider)
            assert send_link(browser, f"ip{n}@example.test", password).status_code == 303
        browser, _, password = signed_in(provider)
        refused = send_link(browser, "ip2@example.test", password)
        assert refused.status_code == 429 and gateway.mails("ip2@example.test") == []
    finally:
        provider.stop()
        gateway.stop()


def test_a_refused_recipient_leaves_no_link(gw):
    provider, gateway = gw
    browser, username, password = signed_in(provider, email="kept@example.test")
    refused = send_link(browser, "someone@nowhere.invalid", password)
    assert refused.status_code == 503
    assert "The e-mail service is unavailable. Try again later." in refused.text
    assert 'id="pending-email"' not in refused.text
    assert account_email(provider, username) == ("kept@example.test", False)


def test_the_link_is_at_the_issuer_whatever_the_host_header(gw):
    """The link is built from the configured issuer: a forged Host header
    must not make the provider mail a link to another site."""
    provider, gateway = gw
    browser, _, password = signed_in(provider)
    # requests would match the cookies to the forged host, so they are sent by hand.
    cookies = "; ".join(f"{c.name}={c.value}" for c in browser.session.cookies)
    sent = requests.post(f"{provider.url}/account/email", allow_redirects=False,
                         headers={"Host": "evil.example", "Cookie": cookies},
                         data={**csrf_fields(browser), "email": "hosted@example.test",
                               "password": password})
    assert sent.status_code == 303
    body = gateway.mails("hosted@example.test")[-1]["body"]
    assert "evil.example" not in body and f"{provider.url}/account/email/confirm/" in body


def test_ending_the_sessions_voids_the_link(gw):
    """A link requested in a session that was then ended (password reset,
    phone change, suspension) must not work any more."""
    provider, gateway = gw
    browser, username, password = signed_in(provider)
    send_link(browser, "voided@example.test", password)
    link = last_link(gateway, "voided@example.test")
    from idp import sessions
    from idp.accounts.service import find_by_username
    from idp.extensions import db

    with provider.app.app_context():
        sessions.end_all(provider.runtime, find_by_username(username), "test",
                         revoke_grants=False)
        db.session.commit()
        db.session.remove()
    assert requests.get(link).status_code == 400
    assert account_email(provider, username) == (None, False)


def test_the_store_keeps_neither_token_nor_address(gw):
    provider, gateway = gw
    browser, username, password = signed_in(provider)
    send_link(browser, "private.person@example.test", password)
    token = last_link(gateway, "private.person@example.test").rsplit("/", 1)[1]
    from idp.accounts.emails import PII_KIND
    from idp.accounts.service import find_by_username
    from idp.extensions import db

    rt = provider.runtime
    with provider.app.app_context():
        account = find_by_username(username)
        entry = rt.store.get(f"email:pending:{account.id}")
        db.session.remove()
    assert token not in entry["link"] and "private.person" not in str(entry)
    assert rt.pii.decrypt(PII_KIND, entry["address"]) == "private.person@example.test"
    assert "private.person" not in str(rt.store.get(entry["link"]))


def test_registration_with_an_email_offers_to_verify_it(gw):
    provider, gateway = gw
    browser = Browser(provider.url)
    form = browser.session.get(f"{provider.url}/register")
    done = browser.session.post(f"{provider.url}/register", data={
        **hidden_inputs(form.text), "username": "mailreg01", "name": "Mail Reg",
        "email": "mail.reg@example.test", "password": "correct horse battery",
        "confirm": "correct horse battery"})
    assert done.status_code == 200 and done.url == f"{provider.url}/"
    assert "Your e-mail address mail.reg@example.test is not verified yet." in done.text
    assert 'href="/account/email"' in done.text
    assert account_email(provider, "mailreg01") == ("mail.reg@example.test", False)
    page = browser.session.get(f"{provider.url}/account/email")
    assert 'value="mail.reg@example.test"' in page.text
    sent = browser.session.post(f"{provider.url}/account/email", data=hidden_inputs(page.text)
                                | {"email": "mail.reg@example.test"}, allow_redirects=False)
    assert sent.status_code == 303
    assert confirm(browser.session, last_link(gateway, "mail.reg@example.test")).headers[
        "Location"] == "/account"
    assert account_email(provider, "mailreg01") == ("mail.reg@example.test", True)
    assert "is not verified yet" not in browser.session.get(f"{provider.url}/").text


def test_without_a_relay_the_page_says_so(make_provider):
    provider = make_provider()
    browser, _, password = signed_in(provider)
    page = browser.session.get(f"{provider.url}/account/email")
    assert "The e-mail service is unavailable. Try again later." in page.text
    assert 'name="email"' not in page.text
    refused = browser.session.post(f"{provider.url}/account/email", data={
        **csrf_fields(browser), "email": "x@example.test", "password": password})
    assert refused.status_code == 503


def test_pages_in_chinese(gw):
    provider, gateway = gw
    browser, username, password = signed_in(provider)
    browser.session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    page = browser.session.get(f"{provider.url}/account/email")
    assert "当前电子邮箱" in page.text and "发送验证链接" in page.text
    sent = send_link(browser, "zh.user@example.test", password)
    assert "已向 zh.user@example.test 发送链接" in browser.session.get(
        provider.url + sent.headers["Location"]).text
    mail = gateway.mails("zh.user@example.test")[-1]
    assert mail["subject"] == "确认您的电子邮箱"
    assert f"设为省级政务服务账号 {username} 的电子邮箱" in mail["body"]
    shown = requests.get(last_link(gateway, "zh.user@example.test"),
                         headers={"Accept-Language": "zh-CN"})
    assert f"将 zh.user@example.test 设为账号 {username} 已验证的电子邮箱？" in shown.text


def _reset_by_sms_at(provider, username: str, when) -> None:
    """Record that ``username``'s password was set by an SMS code at ``when``."""
    from idp.accounts.service import find_by_username
    from idp.extensions import db

    with provider.app.app_context():
        find_by_username(username).password_reset_by_sms_at = when
        db.session.commit()


def test_a_new_address_waits_for_the_hold_after_an_sms_reset(gw):
    """Regression (issue 7 review, finding 11): a phone thief reset the
    password by SMS code and, with it, sent the link to their own mailbox.
    During ``session.reauth_hold_after_sms_reset`` a new address is refused
    (400, the reason and the end of the hold in the province's time); the
    current address can still be verified, and an account with an
    authenticator app (which every session of it proved) is not held."""
    from datetime import timedelta

    from idp.timeutil import utcnow
    from tests.integration.test_totp import _signed_in_with_recovery_code, enrol

    provider, gateway = gw
    browser, username, password = signed_in(provider, email="held.owner@example.test")
    reset_at = utcnow().replace(microsecond=0)
    _reset_by_sms_at(provider, username, reset_at)
    refused = send_link(browser, "held.thief@example.test", password)
    assert refused.status_code == 400
    until = reset_at + timedelta(seconds=259200, hours=8)  # Asia/Shanghai, UTC+8
    assert ("Your password was reset by a text message, which proves only the phone: until "
            f"{until:%Y-%m-%d %H:%M} (") in refused.text
    assert gateway.mails("held.thief@example.test") == []
    chinese = send_link(browser, "held.thief@example.test", password,
                        **{"Accept-Language": "zh-CN"})
    assert chinese.status_code == 400 and "您的密码是通过短信重置的" in chinese.text
    # Verifying the address the account has moves nothing.
    assert send_link(browser, "held.owner@example.test").status_code == 303
    # The hold over (or a password changed since), a new address goes again.
    _reset_by_sms_at(provider, username, reset_at - timedelta(seconds=259201))
    time.sleep(1.1)  # mail.resend_after
    assert send_link(browser, "held.later@example.test", password).status_code == 303
    # An account with an authenticator app: its session proved the app.
    app_user, app_password, _ = provider.create_account()
    _secret, codes = enrol(provider, app_user)
    _reset_by_sms_at(provider, app_user, utcnow())
    session = _signed_in_with_recovery_code(provider, app_user, app_password, codes[0])
    app_browser = Browser(provider.url, session=session)
    assert send_link(app_browser, "app.user@example.test", app_password).status_code == 303
