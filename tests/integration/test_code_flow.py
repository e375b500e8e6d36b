"""The authorization code flow against a live provider, with Authlib's OAuth
client as the relying party and ID tokens checked by PyJWT and python-jose."""

from __future__ import annotations

import base64
import hashlib
import time

import jwt as pyjwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from jose import jwt as jose_jwt

from tests.helpers import Browser, callback_params, pkce_pair, redeem


def _jwks(provider) -> dict:
    return requests.get(f"{provider.url}/jwks.json").json()


def verify_id_token(provider, token: str, client) -> dict:
    """Verify with PyJWT, and again with python-jose; both must agree."""
    header = pyjwt.get_unverified_header(token)
    jwks = _jwks(provider)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert header["alg"] == client.alg
    claims = pyjwt.decode(token, pyjwt.PyJWK(key).key, algorithms=[client.alg],
                          audience=client.client_id, issuer=provider.url)
    if client.alg != "EdDSA":  # python-jose has no EdDSA
        jose_claims = jose_jwt.decode(token, key, algorithms=[client.alg],
                                      audience=client.client_id, issuer=provider.url,
                                      options={"verify_at_hash": False})
        assert jose_claims == claims
    return claims


def test_code_flow_with_authlib_client(provider):
    username, password, sub = provider.create_account(name="Zhang San", email="z@example.test")
    client = provider.create_client()
    rp = OAuth2Session(client.client_id, client.client_secret, redirect_uri=client.redirect_uri,
                       scope="openid profile email offline_access",
                       code_challenge_method="S256")
    verifier, _ = pkce_pair()
    url, state = rp.create_authorization_url(f"{provider.url}/authorize", nonce="N1",
                                             code_verifier=verifier)
    browser = Browser(provider.url)
    response = browser.go(url, username=username, password=password)
    assert response.status_code == 302
    callback = response.headers["Location"]
    assert callback.startswith(client.redirect_uri)
    assert f"iss={requests.utils.quote(provider.url, safe='')}" in callback  # RFC 9207
    token = rp.fetch_token(f"{provider.url}/token", authorization_response=callback,
                           code_verifier=verifier)
    assert token["token_type"] == "Bearer"
    assert token["refresh_token"]
    claims = verify_id_token(provider, token["id_token"], client)
    assert claims["sub"] == sub
    assert claims["nonce"] == "N1"
    assert claims["aud"] == client.client_id and "azp" not in claims  # O-6
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == "0"  # a password login, identity not verified
    assert claims["sid"]
    for name in ("iat", "exp", "auth_time"):  # O-4
        assert isinstance(claims[name], int) and claims[name] > 0
    digest = hashlib.sha256(token["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")

    at_header = pyjwt.get_unverified_header(token["access_token"])
    assert at_header["typ"] == "at+jwt"  # RFC 9068 §2.1
    info = rp.get(f"{provider.url}/userinfo").json()
    assert info == {"sub": sub, "name": "Zhang San", "email": "z@example.test",
                    "email_verified": False, "preferred_username": username,
                    "updated_at": info["updated_at"]}


def test_sso_across_two_clients(provider):
    username, password, sub = provider.create_account()
    first, second = provider.create_client(), provider.create_client()
    browser = Browser(provider.url)
    params = browser.login_for_code(first, username, password)
    assert "code" in params
    # The second client gets a code without the login page being shown.
    before = len(browser.pages)
    verifier, challenge = pkce_pair()
    response = browser.go(browser.authorize_url(second, code_challenge=challenge,
                                                code_challenge_method="S256"))
    assert response.status_code == 302
    assert not any("/login" in p for p in browser.pages[before:])
    token = redeem(provider.url, second, callback_params(response)["code"], verifier).json()
    claims = verify_id_token(provider, token["id_token"], second)
    assert claims["sub"] == sub


def test_prompt_login_asks_again_and_moves_auth_time(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)

    def tokens(**params):
        got = browser.login_for_code(client, username, password, **params)
        return redeem(provider.url, client, got["code"]).json()

    first = pyjwt.decode(tokens()["id_token"], options={"verify_signature": False})
    time.sleep(1.1)
    before = len(browser.pages)
    second = pyjwt.decode(tokens(prompt="login")["id_token"],
                          options={"verify_signature": False})
    assert any("/login" in p for p in browser.pages[before:])  # O-7
    assert second["auth_time"] > first["auth_time"]
    assert second["sid"] != first["sid"]


@pytest.mark.parametrize("mode", ["query", "form_post"])
def test_prompt_none_without_session_is_login_required(provider, mode):
    client = provider.create_client()
    browser = Browser(provider.url)
    response = browser.go(browser.authorize_url(client, prompt="none", state="S1",
                                                response_mode=mode))
    if mode == "query":
        assert response.status_code == 302
        location = response.headers["Location"]
        assert location.startswith(client.redirect_uri)
        assert "error=login_required" in location and "state=S1" in location
    else:
        assert response.status_code == 200
        assert 'name="error" value="login_required"' in response.text
        assert f'action="{client.redirect_uri}"' in response.text
