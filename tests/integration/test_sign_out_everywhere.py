"""A sign-out button on every page of the provider while a session is
signed in (a POST with a CSRF token to the logout endpoint), and dead-end
pages that link home."""

from __future__ import annotations

import re

import requests

from tests.helpers import Browser, hidden_inputs

BAR = re.compile(r'<div class="account-bar" id="account-bar">(.*?)</div>', re.S)


def bar(html: str) -> str | None:
    match = BAR.search(html)
    return match.group(1) if match else None


def signed_in_browser(provider, name: str = "Wang Fang"):
    username, password, _ = provider.create_account(name=name)
    client = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password)
    return browser, client, username


def sign_out_form(html: str) -> dict[str, str]:
    """The header's sign-out form: its action and fields."""
    header = bar(html)
    assert header is not None, html[:2000]
    form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', header, re.S)
    fields = hidden_inputs(form.group(2))
    button = re.search(r'<button type="submit" name="(\w+)" value="(\w+)">Sign out</button>',
                       form.group(2))
    fields[button.group(1)] = button.group(2)
    return {"action": form.group(1), **fields}


def test_every_page_shows_the_account_and_a_sign_out_button(provider):
    browser, client, _username = signed_in_browser(provider)
    pages = {path: browser.session.get(provider.url + path)
             for path in ("/", "/account", "/account/security", "/account/entities",
                          "/login", "/register", "/no-such-page")}
    pages["consent"] = browser.go(browser.authorize_url(client, prompt="consent"), consent="")
    assert "/consent" in pages["consent"].url
    for name, page in pages.items():
        form = sign_out_form(page.text)
        assert form["action"] == "/logout", name
        assert form["confirm"] == "yes" and form["csrf_token"], name
        assert 'href="/account">Signed in as Wang Fang</a>' in bar(page.text), name
    # Without a session there is nothing to sign out of.
    for path in ("/", "/login", "/no-such-page"):
        assert bar(requests.get(provider.url + path).text) is None, path


def _sign_out_from(provider, browser: Browser, path: str) -> requests.Response:
    form = sign_out_form(browser.session.get(provider.url + path).text)
    action = form.pop("action")
    return browser.session.post(provider.url + action, data=form, allow_redirects=False)


def test_sign_out_button_on_the_home_page_ends_the_session(provider):
    browser, client, _ = signed_in_browser(provider)
    done = _sign_out_from(provider, browser, "/")
    assert done.status_code == 200 and "You are signed out" in done.text
    assert 'idp_sso=;' in done.headers["Set-Cookie"]
    assert bar(done.text) is None
    assert '<a href="/">Home</a>' in done.text
    home = browser.session.get(f"{provider.url}/")
    assert bar(home.text) is None and 'href="/login"' in home.text
    response = browser.go(browser.authorize_url(client, prompt="none"))
    assert "error=login_required" in response.headers["Location"]


def test_sign_out_button_in_the_account_console_ends_the_session(provider):
    browser, _client, _ = signed_in_browser(provider)
    done = _sign_out_from(provider, browser, "/account")
    assert done.status_code == 200 and "You are signed out" in done.text
    console = browser.session.get(f"{provider.url}/account", allow_redirects=False)
    assert console.status_code == 302 and console.headers["Location"].startswith("/login")


def test_the_sign_out_button_needs_its_csrf_token(provider):
    browser, _client, _ = signed_in_browser(provider)
    form = sign_out_form(browser.session.get(f"{provider.url}/").text)
    form.pop("action")
    form.pop("csrf_token")
    refused = browser.session.post(f"{provider.url}/logout", data=form, allow_redirects=False)
    assert refused.status_code == 400
    assert bar(browser.session.get(f"{provider.url}/").text) is not None


def test_the_account_name_is_escaped(provider):
    browser, _client, _ = signed_in_browser(provider, name="<b>Bold</b>")
    header = bar(browser.session.get(f"{provider.url}/").text)
    assert "Signed in as &lt;b&gt;Bold&lt;/b&gt;" in header and "<b>" not in header


def test_dead_end_pages_link_home(provider):
    missing = requests.get(f"{provider.url}/no-such-page")
    assert missing.status_code == 404 and '<a href="/">Home</a>' in missing.text
    expired = requests.get(f"{provider.url}/authorize/resume", params={"i": "gone"})
    assert expired.status_code == 400 and '<a href="/">Home</a>' in expired.text
    client = provider.create_client(
        post_logout_redirect_uri="https://rp.example.test/goodbye")
    logged_out = requests.get(f"{provider.url}/logout", params={"client_id": client.client_id})
    assert logged_out.status_code == 200 and '<a href="/">Home</a>' in logged_out.text
    assert re.search(r'<a class="button primary" id="return" '
                     r'href="https://rp.example.test/goodbye">Return to Test client \w+</a>',
                     logged_out.text)
    # Without a known application, home is the only way on.
    alone = requests.get(f"{provider.url}/logout")
    assert 'id="return"' not in alone.text and '<a href="/">Home</a>' in alone.text


def test_server_error_page_shows_no_account(make_provider):
    """A server error's page does not read the store or the database (they
    may be what failed): no account in its header, and no stack trace."""
    provider = make_provider()

    def broken():
        raise RuntimeError("the database went away")

    provider.app.add_url_rule("/broken", view_func=broken)
    browser, _client, _ = signed_in_browser(provider)
    assert bar(browser.session.get(f"{provider.url}/").text) is not None
    page = browser.session.get(f"{provider.url}/broken", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 500
    assert bar(page.text) is None
    assert "本服务出现内部错误，请稍后再试。" in page.text
    assert "Traceback" not in page.text and "went away" not in page.text
