"""Exact redirect URI matching (RFC 9700 §4.1.3): a mismatch is shown on a
page and never redirected (case O-3)."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import Browser


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
    assert "error=unsupported_response_type" in response.headers["Location"]


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
