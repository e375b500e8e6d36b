"""Token, revocation and introspection parameters come from the request body
only (RFC 6749 §2.3.1, §3.2); one in the URL is refused (issue 7)."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import Browser, callback_params, pkce_pair


def _refused(response: requests.Response, name: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"Send '{name}' in the form-encoded request body, not in the "
                             f"URL (RFC 6749 section 3.2)."}


@pytest.fixture(scope="module")
def service(provider):
    return provider.create_client(grant_types=["client_credentials"], scope="profile")


@pytest.mark.parametrize("name,value", [("grant_type", "client_credentials"),
                                        ("scope", "profile")])
def test_token_parameters_in_the_url_are_refused(provider, service, name, value):
    """grant_type and scope were read from the query string (Authlib's Flask
    payload is request.values)."""
    body = {"grant_type": "client_credentials", "scope": "profile"}
    del body[name]
    response = requests.post(f"{provider.url}/token", params={name: value}, data=body,
                             auth=service.auth)
    _refused(response, name)


def test_client_secret_in_the_url_is_refused(provider, service):
    response = requests.post(f"{provider.url}/token", params={
        "client_id": service.client_id, "client_secret": service.client_secret},
        data={"grant_type": "client_credentials"})
    _refused(response, "client_id")


def test_public_client_code_redemption_reads_the_body_only(provider):
    """A public client's client_id, redirect_uri and grant_type in the URL
    were accepted; the code and verifier themselves were read from the body."""
    username, password, _ = provider.create_account()
    app = provider.create_client(public=True)
    verifier, challenge = pkce_pair()
    params = Browser(provider.url).login_for_code(
        app, username, password, code_challenge=challenge, code_challenge_method="S256")
    response = requests.post(f"{provider.url}/token", params={
        "grant_type": "authorization_code", "client_id": app.client_id,
        "redirect_uri": app.redirect_uri}, data={"code": params["code"],
                                                 "code_verifier": verifier})
    _refused(response, "client_id")


def test_unknown_query_parameters_are_ignored(provider, service):
    response = requests.post(f"{provider.url}/token", params={"cachebuster": "1"},
                             data={"grant_type": "client_credentials"}, auth=service.auth)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("endpoint", ["revoke", "introspect"])
def test_revocation_and_introspection_read_the_body_only(provider, service, endpoint):
    token = requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                          auth=service.auth).json()["access_token"]
    response = requests.post(f"{provider.url}/{endpoint}", params={"token": token},
                             auth=service.auth)
    _refused(response, "token")
    response = requests.post(f"{provider.url}/{endpoint}",
                             params={"client_id": service.client_id,
                                     "client_secret": service.client_secret},
                             data={"token": token})
    _refused(response, "client_id")


def test_code_in_the_body_still_works(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    response = browser.go(browser.authorize_url(client), username=username, password=password)
    code = callback_params(response)["code"]
    token = requests.post(f"{provider.url}/token", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": client.redirect_uri}, auth=client.auth)
    assert token.status_code == 200, token.text
