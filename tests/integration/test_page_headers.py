"""Response headers of the provider's pages: a Content-Security-Policy
without inline scripts (a nonce on the form_post page's one script) whose
form-action admits this site and only the redirect origin of the pending
request; 303 See Other after every POST (RFC 9700 §4.12); HSTS when the
configured issuer is https."""

from __future__ import annotations

import re

import requests

from tests.helpers import Browser, hidden_inputs


def directives(response: requests.Response) -> dict[str, str]:
    """The response's CSP as ``{directive: value}``."""
    policy = response.headers["Content-Security-Policy"]
    out = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        out[name] = value.strip()
    return out


def test_pages_allow_no_inline_script_and_post_forms_only_to_this_site(provider):
    page = requests.get(f"{provider.url}/login")
    policy = page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "*" not in policy
    csp = directives(page)
    assert csp["script-src"] == "'none'"
    assert csp["form-action"] == "'self'"
    assert csp["base-uri"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["style-src"] == "'self'"
    assert csp["default-src"] == "'self'"
    # The JSON endpoints carry the same policy.
    discovery = requests.get(f"{provider.url}/.well-known/openid-configuration")
    assert directives(discovery)["form-action"] == "'self'"


def _form_post(provider, browser: Browser, client, username, password) -> requests.Response:
    url = browser.authorize_url(client, response_mode="form_post", nonce="n-1")
    return browser.go(url, username=username, password=password)


def test_form_post_script_carries_the_nonce_of_its_response(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(redirect_uri="https://rp.example.test:8443/oidc/cb")
    browser = Browser(provider.url)
    page = _form_post(provider, browser, client, username, password)
    assert page.status_code == 200
    assert 'action="https://rp.example.test:8443/oidc/cb"' in page.text
    csp = directives(page)
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{22})'", csp["script-src"]).group(1)
    scripts = re.findall(r"<script([^>]*)>", page.text)
    assert scripts == [f' nonce="{nonce}"']
    assert "onload" not in page.text
    # form-action: this site and the origin the form posts to, nothing else.
    assert csp["form-action"] == "'self' https://rp.example.test:8443"
    # A new response, a new nonce.
    again = _form_post(provider, browser, client, username, password)
    assert directives(again)["script-src"] != csp["script-src"]
    assert f'nonce="{nonce}"' not in again.text


def test_pages_of_a_pending_request_may_end_at_its_redirect_origin(provider):
    """Chromium checks form-action against the redirects that follow a form
    submission too: the login and consent pages' forms end at the client."""
    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False,
                                    redirect_uri="https://rp.example.test/callback")
    browser = Browser(provider.url)
    login = browser.go(browser.authorize_url(client))
    assert login.url.startswith(f"{provider.url}/login")
    assert directives(login)["form-action"] == "'self' https://rp.example.test"
    consent = browser.go(browser.authorize_url(client), username=username, password=password,
                         consent="")
    assert "/consent" in consent.url
    assert directives(consent)["form-action"] == "'self' https://rp.example.test"
    # Without a pending request, a page's forms stay on this site.
    assert directives(browser.session.get(f"{provider.url}/login"))["form-action"] == "'self'"
    assert directives(browser.session.get(f"{provider.url}/"))["form-action"] == "'self'"


def test_logout_confirmation_may_end_at_the_registered_target(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(
        post_logout_redirect_uri="https://rp.example.test/signed-out")
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password)
    page = browser.session.get(f"{provider.url}/logout", params={
        "client_id": client.client_id, "post_logout_redirect_uri": client.post_logout_redirect_uri,
        "state": "s1"})
    assert page.status_code == 200 and 'name="confirm"' in page.text
    assert directives(page)["form-action"] == "'self' https://rp.example.test"
    fields = hidden_inputs(page.text)
    fields["confirm"] = "yes"
    done = browser.session.post(f"{provider.url}/logout", data=fields, allow_redirects=False)
    assert done.status_code == 303
    assert done.headers["Location"] == "https://rp.example.test/signed-out?state=s1"


def test_redirects_answering_a_post_are_303(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    # POST /authorize without a session: to the login page.
    started = browser.session.post(f"{provider.url}/authorize", data={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uri, "scope": "openid", "state": "p1"},
        allow_redirects=False)
    assert started.status_code == 303 and "/login?i=" in started.headers["Location"]
    login = browser.session.get(provider.url + started.headers["Location"])
    fields = hidden_inputs(login.text)
    fields.update(username=username, password=password)
    logged_in = browser.session.post(f"{provider.url}/login", data=fields, allow_redirects=False)
    assert logged_in.status_code == 303
    assert logged_in.headers["Location"].startswith("/authorize/resume?i=")
    consent = browser.go(provider.url + logged_in.headers["Location"], consent="")
    assert "/consent" in consent.url
    fields = hidden_inputs(consent.text)
    fields["decision"] = "approve"
    approved = browser.session.post(f"{provider.url}/consent", data=fields,
                                    allow_redirects=False)
    assert approved.status_code == 303
    resumed = browser.session.get(provider.url + approved.headers["Location"],
                                  allow_redirects=False)
    # A GET is answered with the usual 302 ...
    assert resumed.status_code == 302
    assert resumed.headers["Location"].startswith(client.redirect_uri + "?code=")
    # ... and the authorization response to a POST /authorize with a 303.
    posted = browser.session.post(f"{provider.url}/authorize", data={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uri, "scope": "openid", "state": "p2"},
        allow_redirects=False)
    assert posted.status_code == 303
    assert posted.headers["Location"].startswith(client.redirect_uri + "?code=")
    assert "state=p2" in posted.headers["Location"]
    # The sign-out form: POST /logout with a registered target.
    logout = browser.session.get(f"{provider.url}/logout", params={
        "client_id": client.client_id,
        "post_logout_redirect_uri": client.post_logout_redirect_uri})
    fields = hidden_inputs(logout.text)
    fields["confirm"] = "yes"
    done = browser.session.post(f"{provider.url}/logout", data=fields, allow_redirects=False)
    assert done.status_code == 303
    assert done.headers["Location"] == client.post_logout_redirect_uri


def test_hsts_only_with_an_https_issuer(provider, make_provider):
    plain = requests.get(f"{provider.url}/login",
                         headers={"X-Forwarded-Proto": "https", "Host": "id.example.test"})
    assert "Strict-Transport-Security" not in plain.headers
    secure = make_provider(issuer="https://id.example.test")
    for path in ("/login", "/.well-known/openid-configuration"):
        response = requests.get(secure.url + path)
        assert response.headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains"), path
