"""The example relying party (examples/relying_party) against a live
provider: single sign-on across two department sites and single logout, with
one cookie jar shared by all hosts as in a real browser."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import requests

from examples.relying_party.app import create_relying_party, default_cookie_name
from tests.conftest import free_port
from tests.helpers import hidden_inputs
from tests.relying_parties import RelyingParty

LOGIN_BUTTON = "Log in with the provincial account"


def _is_provider_login(provider, response: requests.Response) -> bool:
    return (response.url.startswith(provider.url + "/login")
            and 'name="password"' in response.text)


def _log_in(provider, browser: requests.Session, rp: RelyingParty, username: str,
            password: str) -> requests.Response:
    page = browser.get(f"{rp.url}/login")
    assert _is_provider_login(provider, page), (page.url, page.text[:300])
    fields = hidden_inputs(page.text)
    fields.update(username=username, password=password)
    return browser.post(f"{provider.url}/login", data=fields)


def test_single_sign_on_and_single_logout(provider, relying_parties):
    username, password, sub = provider.create_account(name="Li Si", email="li@example.test")
    first, second = relying_parties
    browser = requests.Session()

    home = _log_in(provider, browser, first, username, password)
    assert home.status_code == 200 and home.url == f"{first.url}/"
    assert "Department of Civil Affairs" in home.text
    assert "Li Si" in home.text and username in home.text and sub in home.text
    assert "Log out" in home.text

    # Site 2: the provider's SSO session answers at once, no login form.
    home = browser.get(f"{second.url}/login")
    assert home.status_code == 200 and home.url == f"{second.url}/"
    assert not any(urlsplit(r.url).path == "/login" and r.url.startswith(provider.url)
                   for r in home.history)
    assert sub in home.text and "Human Resources and Social Security" in home.text

    # Each party keeps its own cookie although all share the host 127.0.0.1.
    names = {cookie.name for cookie in browser.cookies}
    assert {"idp_sso", default_cookie_name(first.client_id),
            default_cookie_name(second.client_id)} <= names
    assert default_cookie_name(first.client_id) != default_cookie_name(second.client_id)

    # A logout POST without the site's CSRF token (a sibling site's form)
    # changes nothing.
    forged = browser.post(f"{first.url}/logout")
    assert "idp_sso" in {cookie.name for cookie in browser.cookies}
    assert username in forged.text

    # Logout on site 1 goes through the provider (the hint's sid matches, so
    # no confirmation page) and back to site 1 with a valid state.
    csrf = hidden_inputs(browser.get(f"{first.url}/").text)["csrf"]
    back = browser.post(f"{first.url}/logout", data={"csrf": csrf})
    assert back.status_code == 200, back.text[:300]
    assert any(r.url.startswith(f"{provider.url}/logout?") for r in back.history)
    assert back.url.startswith(f"{first.url}/?state=")
    assert "You have logged out" in back.text and LOGIN_BUTTON in back.text
    assert "idp_sso" not in {cookie.name for cookie in browser.cookies}

    # Back-channel logout: the provider told site 2, whose own session ends
    # at its next request.
    deadline = time.monotonic() + 15
    while sub in browser.get(f"{second.url}/").text:
        assert time.monotonic() < deadline, "site 2 was never told of the logout"
        time.sleep(0.2)
    assert LOGIN_BUTTON in browser.get(f"{second.url}/").text

    # The SSO session is gone: site 2 must ask for the password again.
    page = browser.get(f"{second.url}/login")
    assert _is_provider_login(provider, page)
    home = browser.post(f"{provider.url}/login",
                        data={**hidden_inputs(page.text), "username": username,
                              "password": password})
    assert home.url == f"{second.url}/" and sub in home.text


def test_the_site_refuses_a_forged_or_replayed_logout_token(provider, relying_parties):
    from idp.oidc.tokens import issue_logout_token

    first, _ = relying_parties
    url = f"{first.url}/backchannel-logout"
    with provider.app.app_context():
        rt = provider.runtime
        good = issue_logout_token(rt, client_id=first.client_id, alg="ES256", subject="s",
                                  sid="sid-1")
        other = issue_logout_token(rt, client_id="another-client", alg="ES256", subject="s",
                                   sid="sid-1")
        no_sid = issue_logout_token(rt, client_id=first.client_id, alg="ES256", subject="s",
                                    sid=None)
    answer = requests.post(url, data={"logout_token": good})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    replay = requests.post(url, data={"logout_token": good})
    assert replay.status_code == 400 and "replayed" in replay.json()["error_description"]
    assert requests.post(url, data={"logout_token": other}).status_code == 400
    assert requests.post(url, data={"logout_token": no_sid}).status_code == 400
    with provider.app.app_context():
        from idp.oidc.tokens import BACKCHANNEL_LOGOUT_EVENT, _sign
        from idp.timeutil import epoch

        no_exp = _sign(provider.runtime, "ES256", {
            "iss": provider.url, "aud": first.client_id, "iat": epoch(), "jti": "j-no-exp",
            "sid": "sid-2", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}, "logout+jwt")
    assert requests.post(url, data={"logout_token": no_exp}).status_code == 400
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert requests.post(url, data={"logout_token": tampered}).status_code == 400
    assert requests.post(url, data={}).status_code == 400


def test_logout_requires_post(provider, relying_parties):
    first, _ = relying_parties
    assert requests.get(f"{first.url}/logout").status_code == 405


def test_callback_with_unknown_state_is_rejected(provider, relying_parties):
    first, _ = relying_parties
    response = requests.get(f"{first.url}/callback", params={"code": "x", "state": "forged"})
    assert response.status_code == 400
    assert "Login failed" in response.text


def test_login_error_from_provider_is_shown(provider, relying_parties):
    first, _ = relying_parties
    browser = requests.Session()
    page = browser.get(f"{first.url}/login", allow_redirects=False)
    state = parse_qs(urlsplit(page.headers["Location"]).query)["state"][0]
    response = browser.get(f"{first.url}/callback", params={
        "error": "access_denied", "state": state,
        "error_description": "Your account is locked, call 555-0100"})
    assert response.status_code == 400 and "access_denied" in response.text
    # Text from the query string is not shown on the department's page.
    assert "555-0100" not in response.text


def test_logout_without_login_stays_local(provider, relying_parties):
    first, _ = relying_parties
    response = requests.post(f"{first.url}/logout", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] in ("/", f"{first.url}/")


def test_unreachable_provider_gives_502():
    app = create_relying_party(f"http://127.0.0.1:{free_port()}", "c", "s",
                               "http://127.0.0.1:9", "Offline department")
    response = app.test_client().get("/login")
    assert response.status_code == 502
    assert b"cannot be reached" in response.data


def test_a_login_below_the_level_asked_for_is_refused(provider, relying_parties):
    """acr_values travels through the browser: a user who removes it from
    the authorization request got a level-L1 login accepted by a service
    that asked for L3."""
    from urllib.parse import urlencode

    username, password, _ = provider.create_account(name="Wang Wu")
    first, _ = relying_parties
    browser = requests.Session()
    start = browser.get(f"{first.url}/login", params={"level": "L3"}, allow_redirects=False)
    location = urlsplit(start.headers["Location"])
    params = parse_qs(location.query)
    assert params["acr_values"] == ["L3"]
    tampered = {k: v[0] for k, v in params.items() if k not in ("acr_values", "claims")}
    page = browser.get(f"{provider.url}/authorize?{urlencode(tampered)}")
    assert _is_provider_login(provider, page), page.url
    fields = hidden_inputs(page.text)
    fields.update(username=username, password=password)
    refused = browser.post(f"{provider.url}/login", data=fields)
    assert refused.status_code == 403
    assert refused.url.startswith(f"{first.url}/callback?")
    assert ("This service needs identity assurance level L3, but the login proved no "
            "assurance level." in refused.text)
    home = browser.get(f"{first.url}/")
    assert username not in home.text and LOGIN_BUTTON in home.text


def test_a_higher_level_than_asked_for_is_accepted():
    from examples.relying_party.app import meets_level

    levels = ["L1", "L2", "L3", "L4"]
    assert meets_level("L3", "L3", levels) and meets_level("L4", "L3", levels)
    assert not meets_level("L2", "L3", levels)
    assert not meets_level("0", "L1", levels) and not meets_level(None, "L1", levels)
    assert not meets_level("gold", "L1", levels) and not meets_level("L3", "gold", levels)
