"""Exact redirect URI matching (RFC 9700 §4.1.3): a mismatch is shown on a
page and never redirected (case O-3)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.helpers import Browser, pkce_pair


@pytest.fixture(scope="module")
def registered(provider):
    return provider.create_client(redirect_uri="https://rp.example.test/cb/path")


@pytest.mark.parametrize("uri", [
    "https://evil.example.test/cb",                 # O-3: another host
    "https://rp.example.test/cb/path/",             # trailing slash
    "https://rp.example.test/cb/path?x=1",          # added query
    "https://RP.example.test/cb/path",              # different case in host
    "https://rp.example.test/CB/path",              # different case in path
    "https://rp.example.test/cb/path/../path",      # path traversal
    "https://rp.example.test/cb/path/%2e%2e/path",  # encoded traversal
    "https://rp.example.test:443/cb/path",          # explicit default port
    "http://rp.example.test/cb/path",               # other scheme
    "https://rp.example.test/cb/path#frag",         # fragment
    "https://rp.example.test.evil.test/cb/path",    # suffix host
    "https://rp.example.test@evil.test/cb/path",    # userinfo trick
])
def test_mismatched_redirect_uri_is_an_error_page(provider, registered, uri):
    response = requests.get(f"{provider.url}/authorize", params={
        "response_type": "code", "client_id": registered.client_id, "redirect_uri": uri,
        "scope": "openid", "state": "S"}, allow_redirects=False)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_request" in response.text


def test_unknown_client_is_an_error_page(provider):
    response = requests.get(f"{provider.url}/authorize", params={
        "response_type": "code", "client_id": "no-such-client",
        "redirect_uri": "https://evil.example.test/cb", "scope": "openid"},
        allow_redirects=False)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_client" in response.text


def test_missing_redirect_uri_for_openid_is_an_error_page(provider, registered):
    response = requests.get(f"{provider.url}/authorize", params={
        "response_type": "code", "client_id": registered.client_id, "scope": "openid"},
        allow_redirects=False)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_exact_uri_is_accepted(provider, registered):
    browser = Browser(provider.url)
    response = browser.go(browser.authorize_url(registered))
    assert response.status_code == 200
    assert "/login?i=" in response.url
    assert 'name="username"' in response.text and 'autocomplete="username"' in response.text
    assert 'autocomplete="current-password"' in response.text


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", "code token"])
def test_other_response_types_are_refused(provider, registered, response_type):
    response = requests.get(f"{provider.url}/authorize", params={
        "response_type": response_type, "client_id": registered.client_id,
        "redirect_uri": registered.redirect_uri, "scope": "openid", "state": "S"},
        allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(registered.redirect_uri)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["unsupported_response_type"]
    # Regression: Authlib's swapped arguments sent only the value ("token").
    assert query["error_description"] == [f"The response type '{response_type}' is not "
                                          "supported."]
    assert query["state"] == ["S"]


def test_a_missing_response_type_is_invalid_request(provider, registered):
    """Regression: it was unsupported_response_type "response_type=The
    response type 'None' is not supported by the server. is not supported"."""
    response = requests.get(f"{provider.url}/authorize", params={
        "client_id": registered.client_id, "redirect_uri": registered.redirect_uri,
        "scope": "openid", "state": "S"}, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(registered.redirect_uri)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == ["response_type is missing"]
    assert query["state"] == ["S"]


@pytest.mark.parametrize("param,value", [
    ("redirect_uri", 'http://127.0.0.1:9/cb"'),
    ("redirect_uri", "http://127.0.0.1:9/cb\\"),
    ("redirect_uri", "http://127.0.0.1:9/cé"),
    ("redirect_uri", "http://127.0.0.1:9/cb\x00"),
    ("redirect_uri", "http://１２７.0.0.1:9/cb"),
    ("response_type", "code\x00"),
    ("response_type", 'code"'),
    ("response_type", "codé"),
])
def test_unprintable_input_is_an_error_page_not_a_crash(provider, registered, param, value):
    """Security regression: these crashed with a 500 (Authlib refuses to echo them)."""
    params = {"response_type": "code", "client_id": registered.client_id,
              "redirect_uri": registered.redirect_uri, "scope": "openid", "state": "S"}
    params[param] = value
    response = requests.get(f"{provider.url}/authorize", params=params, allow_redirects=False)
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        assert response.headers["Location"].startswith(registered.redirect_uri)
    assert "Internal Server Error" not in response.text


@pytest.mark.parametrize("max_age", ["\u00b2", "\u0663", "-1", "1e9", "abc"])
def test_max_age_must_be_ascii_digits(provider, max_age):
    client = provider.create_client()
    response = requests.get(f"{provider.url}/authorize", params={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uri, "scope": "openid", "max_age": max_age},
        allow_redirects=False)
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]


@pytest.mark.parametrize("endpoint", ["/token", "/introspect", "/revoke"])
def test_undecodable_basic_credentials(provider, endpoint):
    response = requests.post(f"{provider.url}{endpoint}", data={
        "grant_type": "client_credentials", "token": "x"},
        headers={"Authorization": "Basic //46/w=="})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


# --- native apps: loopback redirect URIs on any port (RFC 8252 §7.3) ---------

@pytest.fixture(scope="module")
def native(provider):
    """A public native app registered with both loopback IP literals, a port
    given at registration, and a localhost URI (which keeps exact matching)."""
    from idp.clients.metadata import ClientMetadata
    from idp.clients.service import create_client
    from idp.extensions import db

    with provider.app.app_context():
        row, _ = create_client(provider.runtime, ClientMetadata(
            "Native app", ["http://127.0.0.1/cb", "http://[::1]/cb",
                           "http://127.0.0.1:8400/oauth?app=1", "http://localhost/cb"],
            token_endpoint_auth_method="none", trusted=True, subject_type="public"))
        db.session.commit()
        return row.client_id


def _authorize(provider, client_id: str, redirect_uri: str) -> requests.Response:
    return requests.get(f"{provider.url}/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "openid", "state": "S", "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256", "prompt": "none"}, allow_redirects=False)


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:51234/cb",
    "http://127.0.0.1/cb",
    "http://127.0.0.1:1/cb",
    "http://[::1]:65535/cb",
    "http://127.0.0.1:8401/oauth?app=1",
    "http://127.0.0.1/oauth?app=1",
])
def test_loopback_redirect_uri_matches_any_port(provider, native, uri):
    """RFC 8252 §7.3 (MUST): the app listens on a port the OS gave it; the
    answer (here login_required for prompt=none) goes to that very URI."""
    response = _authorize(provider, native, uri)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(uri + ("&" if "?" in uri else "?"))
    assert "error=login_required" in response.headers["Location"]


@pytest.mark.parametrize("uri", [
    "http://localhost:51234/cb",            # localhost: exact matching (RFC 8252 §8.3)
    "https://127.0.0.1:51234/cb",           # other scheme
    "http://127.0.0.2:51234/cb",            # other loopback address, not registered
    "http://127.0.0.1:51234/cb/",           # other path
    "http://127.0.0.1:51234/CB",
    "http://127.0.0.1:51234/cb?x=1",        # added query
    "http://127.0.0.1:51234/oauth?app=2",   # other query
    "http://127.0.0.1:51234/oauth",         # missing query
    "http://127.0.0.1:51234/cb#f",          # fragment
    "http://127.0.0.1:0/cb",                # no such port
    "http://127.0.0.1:65536/cb",
    "http://127.0.0.1:/cb",
    "http://127.0.0.1:80@evil.test/cb",     # userinfo trick
    "http://127.0.0.1:51234.evil.test/cb",
    "http://127.0.0.1.evil.test:51234/cb",
    "http://[::1]:51234/oauth?app=1",       # registered for 127.0.0.1 only
])
def test_loopback_rule_changes_nothing_but_the_port(provider, native, uri):
    response = _authorize(provider, native, uri)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_loopback_code_is_redeemed_with_its_own_port(provider, native):
    """The token request repeats the redirect URI with the port used
    (RFC 6749 §4.1.3): another port is invalid_grant."""
    from tests.helpers import TestClient, redeem

    username, password, _ = provider.create_account()
    verifier, challenge = pkce_pair()
    client = TestClient(native, None, "http://127.0.0.1:49152/cb")
    params = Browser(provider.url).login_for_code(
        client, username, password, code_challenge=challenge, code_challenge_method="S256")
    other = redeem(provider.url, TestClient(native, None, "http://127.0.0.1:49153/cb"),
                   params["code"], verifier)
    assert other.json()["error"] == "invalid_grant"
    params = Browser(provider.url).login_for_code(
        client, username, password, code_challenge=challenge, code_challenge_method="S256")
    assert redeem(provider.url, client, params["code"], verifier).status_code == 200


def test_a_confidential_clients_loopback_redirect_uri_keeps_its_port(provider):
    """Regression: the any-port rule of RFC 8252 §7.3 applied to every
    client, so a web client registered with a secret and
    ``http://127.0.0.1:7198/cb`` had its code sent to whatever listened on
    ``http://127.0.0.1:5555/cb`` (another program of that machine). Native
    apps are public clients (RFC 8252 §8.4); a confidential client gets
    exact matching (RFC 9700 §2.1): an error page, no redirect, no code."""
    client = provider.create_client(redirect_uri="http://127.0.0.1:7198/cb")
    assert client.client_secret
    for uri in ("http://127.0.0.1:5555/cb", "http://127.0.0.1/cb"):
        response = _authorize(provider, client.client_id, uri)
        assert response.status_code == 400, uri
        assert "Location" not in response.headers
    exact = _authorize(provider, client.client_id, client.redirect_uri)
    assert exact.status_code == 302
    assert exact.headers["Location"].startswith("http://127.0.0.1:7198/cb?")
    # A public client's registration of the same URI keeps the port's freedom.
    native = provider.create_client(public=True, redirect_uri="http://127.0.0.1:7198/cb")
    moved = _authorize(provider, native.client_id, "http://127.0.0.1:5555/cb")
    assert moved.status_code == 302
    assert moved.headers["Location"].startswith("http://127.0.0.1:5555/cb?")


@pytest.mark.parametrize("uri", ["myapp:/cb", "myapp://cb", "cn-gov-app:/oauth"])
def test_private_use_scheme_without_a_dot_is_refused_saying_so(provider, uri):
    """RFC 8252 §7.1: a private-use scheme is a reverse domain name."""
    from idp.clients.metadata import ClientError

    with pytest.raises(ClientError) as info:
        provider.create_client(public=True, redirect_uri=uri)
    assert str(info.value) == (
        f"redirect URI {uri!r}: a private-use URI scheme must contain a dot, a reverse domain "
        "name the app's owner controls, such as com.example.app:/callback (RFC 8252 §7.1)")


def test_private_use_scheme_with_a_dot_is_registered(provider):
    client = provider.create_client(public=True, redirect_uri="cn.gov.example.app:/oauth")
    response = _authorize(provider, client.client_id, "cn.gov.example.app:/oauth")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("cn.gov.example.app:/oauth?")
