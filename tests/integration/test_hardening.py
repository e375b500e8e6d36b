"""Regression tests for faults found by trying to break the provider."""

from __future__ import annotations

import requests

from tests.helpers import Browser


def test_repeated_authorization_parameters_are_refused(provider):
    client = provider.create_client()
    for name, values in (("prompt", ["none", "login"]), ("nonce", ["a", "b"])):
        params = [("response_type", "code"), ("client_id", client.client_id),
                  ("redirect_uri", client.redirect_uri), ("scope", "openid")]
        params += [(name, v) for v in values]
        response = requests.get(f"{provider.url}/authorize", params=params,
                                allow_redirects=False)
        assert response.status_code == 302
        assert "error=invalid_request" in response.headers["Location"]


def test_unknown_parameters_are_not_stored(provider):
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, junk="x" * 50_000))
    assert page.status_code == 200 and "/login" in page.url
    interaction_id = page.url.split("i=")[1]
    stored = provider.runtime.store.get("interaction:" + interaction_id)
    assert "junk" not in stored["args"]


def test_interactions_per_ip_are_limited(make_provider):
    limited = make_provider(throttle={"interactions_per_ip": 3})
    client = limited.create_client()
    browser = Browser(limited.url)
    for _ in range(3):
        assert "/login" in browser.go(browser.authorize_url(client)).url
    response = browser.go(browser.authorize_url(client))
    assert response.status_code == 429
