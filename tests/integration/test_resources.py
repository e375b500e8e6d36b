"""Userinfo (OIDC Core §5.3, case O-8), revocation (RFC 7009), introspection
(RFC 7662), and refusal of forged tokens (``alg: none``, HS256 keyed with our
public key) wherever the provider accepts a JWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
import requests

from tests.helpers import Browser, redeem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.fixture(scope="module")
def session_tokens(provider):
    """A user, a client and a fresh token response with a refresh token."""
    username, password, sub = provider.create_account(email="u@example.test")
    client = provider.create_client()
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password,
                                  scope="openid email offline_access")["code"]
    return client, sub, redeem(provider.url, client, code).json(), browser


def _fresh(provider, session_tokens, scope="openid email offline_access"):
    client, _sub, _tokens, browser = session_tokens
    code = browser.login_for_code(client, "", "", scope=scope)["code"]
    return redeem(provider.url, client, code).json()


def test_userinfo_get_and_post(provider, session_tokens):
    _client, sub, tokens, _ = session_tokens
    get = requests.get(f"{provider.url}/userinfo",
                       headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert get.status_code == 200 and get.json()["sub"] == sub
    assert get.json()["email"] == "u@example.test"
    post = requests.post(f"{provider.url}/userinfo", data={"access_token": tokens["access_token"]})
    assert post.status_code == 200 and post.json()["sub"] == sub
    post_header = requests.post(f"{provider.url}/userinfo",
                                headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert post_header.status_code == 200


def test_userinfo_token_in_two_places_is_invalid_request(provider, session_tokens):
    tokens = session_tokens[2]
    response = requests.post(f"{provider.url}/userinfo",
                             headers={"Authorization": f"Bearer {tokens['access_token']}"},
                             data={"access_token": tokens["access_token"]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_userinfo_without_token(provider):
    response = requests.get(f"{provider.url}/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_userinfo_scope_limits_claims(provider, session_tokens):
    tokens = _fresh(provider, session_tokens, scope="openid")
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert set(info) == {"sub"}


def test_claims_parameter(provider, session_tokens):
    client, _sub, _tokens, browser = session_tokens
    claims = json.dumps({"id_token": {"email": {"essential": True}},
                         "userinfo": {"preferred_username": None}})
    code = browser.login_for_code(client, "", "", scope="openid email", claims=claims)["code"]
    tokens = redeem(provider.url, client, code).json()
    import jwt as pyjwt

    id_token = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_token["email"] == "u@example.test"
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    # preferred_username needs the profile scope, which was not granted.
    assert "preferred_username" not in info
    bad = Browser(provider.url)
    bad.session = browser.session
    response = bad.go(bad.authorize_url(client, claims="{not json"))
    assert "error=invalid_request" in response.headers["Location"]


def test_revoke_refresh_token_revokes_grant(provider, session_tokens):
    client = session_tokens[0]
    tokens = _fresh(provider, session_tokens)
    response = requests.post(f"{provider.url}/revoke", data={
        "token": tokens["refresh_token"], "token_type_hint": "refresh_token"}, auth=client.auth)
    assert response.status_code == 200
    refresh = requests.post(f"{provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=client.auth)
    assert refresh.json()["error"] == "invalid_grant"
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 401


def test_revoke_access_token(provider, session_tokens):
    client = session_tokens[0]
    tokens = _fresh(provider, session_tokens)
    assert requests.post(f"{provider.url}/revoke", data={"token": tokens["access_token"]},
                         auth=client.auth).status_code == 200
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 401
    # The refresh token of the same grant still works (RFC 7009 §2.1 leaves it open).
    refresh = requests.post(f"{provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=client.auth)
    assert refresh.status_code == 200


def test_revoke_unknown_token_is_ok_and_needs_client_auth(provider, session_tokens):
    client = session_tokens[0]
    assert requests.post(f"{provider.url}/revoke", data={"token": "nonsense"},
                         auth=client.auth).status_code == 200
    unauth = requests.post(f"{provider.url}/revoke", data={"token": "nonsense"})
    assert unauth.status_code in (400, 401)
    assert unauth.json()["error"] == "invalid_client"


def test_revoke_other_clients_token_has_no_effect(provider, session_tokens):
    tokens = _fresh(provider, session_tokens)
    other = provider.create_client()
    requests.post(f"{provider.url}/revoke", data={"token": tokens["refresh_token"]},
                  auth=other.auth)
    requests.post(f"{provider.url}/revoke", data={"token": tokens["access_token"]},
                  auth=other.auth)
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200


def test_introspection(provider, session_tokens):
    client, sub, _tokens, _ = session_tokens
    tokens = _fresh(provider, session_tokens)
    body = requests.post(f"{provider.url}/introspect", data={"token": tokens["access_token"]},
                         auth=client.auth).json()
    assert body["active"] is True and body["sub"] == sub
    assert body["client_id"] == client.client_id and isinstance(body["exp"], int)
    refresh = requests.post(f"{provider.url}/introspect", data={
        "token": tokens["refresh_token"]}, auth=client.auth).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    assert requests.post(f"{provider.url}/introspect", data={"token": "garbage"},
                         auth=client.auth).json() == {"active": False}
    unauth = requests.post(f"{provider.url}/introspect", data={"token": tokens["access_token"]})
    assert unauth.status_code == 401


def _public_key_pem(jwk: dict) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from joserfc.jwk import import_key

    return import_key(jwk).public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _forged(provider, claims: dict, alg: str, typ: str | None = "at+jwt") -> list[str]:
    """Tokens with ``alg: none`` and with HS256 keyed by each of our public
    keys (PEM and JWK text; RS256 and ES256 keys are published since issue
    7), the classic algorithm-confusion attacks (RFC 8725 §2.1)."""
    header = {"alg": "none"}
    if typ:
        header["typ"] = typ
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    out = [signing_input + ".", signing_input + ".AAAA"]
    for jwk in requests.get(f"{provider.url}/jwks.json").json()["keys"]:
        for secret in (_public_key_pem(jwk), json.dumps(jwk).encode()):
            hs_header = dict(header, alg="HS256", kid=jwk["kid"])
            hs_input = (f"{_b64(json.dumps(hs_header).encode())}."
                        f"{_b64(json.dumps(claims).encode())}")
            mac = hmac.new(secret, hs_input.encode(), hashlib.sha256).digest()
            out.append(f"{hs_input}.{_b64(mac)}")
    return out


def test_forged_access_tokens_are_refused(provider, session_tokens):
    client, sub, tokens, _ = session_tokens
    import jwt as pyjwt

    claims = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    for forged in _forged(provider, claims, "none"):
        info = requests.get(f"{provider.url}/userinfo",
                            headers={"Authorization": f"Bearer {forged}"})
        assert info.status_code == 401
        assert requests.post(f"{provider.url}/introspect", data={"token": forged},
                             auth=client.auth).json() == {"active": False}


def test_forged_id_token_hints_are_refused(provider, session_tokens):
    client, sub, tokens, browser = session_tokens
    import jwt as pyjwt

    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    for forged in _forged(provider, claims, "none", typ=None):
        response = requests.get(f"{provider.url}/logout", params={
            "id_token_hint": forged, "post_logout_redirect_uri": client.post_logout_redirect_uri},
            allow_redirects=False)
        assert response.status_code == 400 and "Location" not in response.headers
        auth = browser.go(browser.authorize_url(client, id_token_hint=forged, prompt="none"))
        assert "error=invalid_request" in auth.headers["Location"]


def test_introspection_of_another_clients_token_needs_a_resource_server(provider,
                                                                        session_tokens):
    """Issue 7 (RFC 7662 §4): a client learns nothing about another client's
    access token; a client registered as a resource server (an API that
    receives such tokens) does. Refresh tokens stay their own client's."""
    client, sub, _tokens, _ = session_tokens
    tokens = _fresh(provider, session_tokens)
    stranger = provider.create_client(grant_types=["client_credentials"])
    api = provider.create_client(grant_types=["client_credentials"], resource_server=True)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = requests.post(f"{provider.url}/introspect", data={"token": token},
                               auth=stranger.auth)
        assert answer.status_code == 200 and answer.json() == {"active": False}
    seen = requests.post(f"{provider.url}/introspect", data={"token": tokens["access_token"]},
                         auth=api.auth).json()
    assert seen["active"] is True
    assert (seen["client_id"], seen["sub"]) == (client.client_id, sub)
    assert requests.post(f"{provider.url}/introspect", data={"token": tokens["refresh_token"]},
                         auth=api.auth).json() == {"active": False}
    # A client's own tokens, client_credentials included, stay visible to it.
    own = requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                        auth=stranger.auth).json()["access_token"]
    assert requests.post(f"{provider.url}/introspect", data={"token": own},
                         auth=stranger.auth).json()["active"] is True
    assert requests.post(f"{provider.url}/introspect", data={"token": own},
                         auth=api.auth).json()["active"] is True
    assert requests.post(f"{provider.url}/introspect", data={"token": own},
                         auth=client.auth).json() == {"active": False}


def test_public_clients_cannot_be_resource_servers(provider):
    from idp.clients.metadata import ClientError

    with pytest.raises(ClientError, match="cannot be a public client"):
        provider.create_client(public=True, resource_server=True)
