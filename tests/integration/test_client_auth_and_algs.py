"""private_key_jwt (RFC 7523, case O-5) and per-client signing algorithms (case O-2)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import jwt as pyjwt
import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, RSAKey

from tests.helpers import Browser, redeem


def _assertion(key, client_id: str, aud: str | list, *, iat_offset: int = 0, jti: str | None = None,
               alg: str = "ES256", exp_in: int = 60) -> str:
    now = int(time.time()) + iat_offset
    return jose_jwt.encode({"alg": alg, "kid": key.kid}, {
        "iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + exp_in,
        "jti": jti or uuid.uuid4().hex}, key, algorithms=[alg])


@pytest.fixture(scope="module")
def jwt_client(provider):
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]})
    return client, key


def _token(provider, client_id: str, assertion: str) -> requests.Response:
    return requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})


def test_private_key_jwt(provider, jwt_client):
    client, key = jwt_client
    response = _token(provider, client.client_id,
                      _assertion(key, client.client_id, f"{provider.url}/token"))
    assert response.status_code == 200, response.text


def test_issuer_as_audience_is_accepted(provider, jwt_client):
    client, key = jwt_client
    assert _token(provider, client.client_id,
                  _assertion(key, client.client_id, provider.url)).status_code == 200


@pytest.mark.parametrize("aud", ["{issuer}", "{issuer}/token", ["{issuer}"],
                                 ["{issuer}/token"]])
def test_single_audience_forms_are_accepted(provider, jwt_client, aud):
    client, key = jwt_client
    aud = [a.format(issuer=provider.url) for a in aud] if isinstance(aud, list) \
        else aud.format(issuer=provider.url)
    response = _token(provider, client.client_id, _assertion(key, client.client_id, aud))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("aud", [
    ["{issuer}", "https://other-provider.example.test"],
    ["https://other-provider.example.test", "{issuer}/token"],
    ["{issuer}", "{issuer}/token"],
    "{issuer}/revoke",
    [],
])
def test_audience_lists_and_other_values_are_refused(provider, jwt_client, aud):
    """An assertion also addressed to another server could be replayed here
    by that server; Authlib accepted any array containing one of ours."""
    client, key = jwt_client
    aud = [a.format(issuer=provider.url) for a in aud] if isinstance(aud, list) \
        else aud.format(issuer=provider.url)
    response = _token(provider, client.client_id, _assertion(key, client.client_id, aud))
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "The client assertion's aud must be the issuer or the token "
                             "endpoint URL alone."}


def test_assertion_iat_slightly_in_future_is_accepted(provider, jwt_client):
    """O-5: a client clock 5 seconds ahead is tolerated."""
    client, key = jwt_client
    response = _token(provider, client.client_id,
                      _assertion(key, client.client_id, provider.url, iat_offset=5))
    assert response.status_code == 200, response.text
    claims = pyjwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert "nbf" not in claims or claims["nbf"] <= claims["iat"]


def test_assertion_far_in_future_is_refused(provider, jwt_client):
    client, key = jwt_client
    response = _token(provider, client.client_id,
                      _assertion(key, client.client_id, provider.url, iat_offset=3600))
    assert response.json()["error"] == "invalid_client"


def test_expired_assertion_is_refused(provider, jwt_client):
    client, key = jwt_client
    response = _token(provider, client.client_id,
                      _assertion(key, client.client_id, provider.url, iat_offset=-600))
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("exp_in", [2 * 3600, 10**9, 2**62])
def test_assertion_with_far_expiry_is_refused(provider, jwt_client, exp_in):
    """Security regression: a huge exp crashed the Redis replay cache."""
    client, key = jwt_client
    response = _token(provider, client.client_id,
                      _assertion(key, client.client_id, provider.url, exp_in=exp_in))
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"


def test_assertion_replay_is_refused(provider, jwt_client):
    client, key = jwt_client
    assertion = _assertion(key, client.client_id, provider.url, jti="fixed-" + uuid.uuid4().hex)
    assert _token(provider, client.client_id, assertion).status_code == 200
    assert _token(provider, client.client_id, assertion).json()["error"] == "invalid_client"


def test_wrong_audience_and_wrong_key(provider, jwt_client):
    client, key = jwt_client
    assert _token(provider, client.client_id, _assertion(
        key, client.client_id, "https://other.example.test")).json()["error"] == "invalid_client"
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    assert _token(provider, client.client_id, _assertion(
        stranger, client.client_id, provider.url)).json()["error"] == "invalid_client"


def test_unsigned_and_hmac_assertions_are_refused(provider, jwt_client):
    client, key = jwt_client
    now = int(time.time())
    claims = {"iss": client.client_id, "sub": client.client_id, "aud": provider.url,
              "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    unsigned = f"{b64({'alg': 'none'})}.{b64(claims)}."
    assert _token(provider, client.client_id, unsigned).json()["error"] == "invalid_client"
    import hmac as hmac_mod

    public_json = json.dumps(key.as_dict(private=False)).encode()
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{b64(claims)}"
    mac = hmac_mod.new(public_json, signing_input.encode(), hashlib.sha256).digest()
    hs = f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    assert _token(provider, client.client_id, hs).json()["error"] == "invalid_client"


def test_secret_client_cannot_use_assertion(provider):
    client = provider.create_client(grant_types=["client_credentials"])
    key = ECKey.generate_key("P-256", parameters={"kid": "x"}, private=True)
    response = _token(provider, client.client_id,
                      _assertion(key, client.client_id, provider.url))
    assert response.json()["error"] == "invalid_client"


def test_rsa_private_key_jwt(provider):
    key = RSAKey.generate_key(2048, parameters={"kid": "r1"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]})
    response = _token(provider, client.client_id, _assertion(
        key, client.client_id, provider.url, alg="RS256"))
    assert response.status_code == 200


@pytest.mark.parametrize("alg,digest", [
    ("ES256", hashlib.sha256), ("RS256", hashlib.sha256), ("RS512", hashlib.sha512),
    ("ES384", hashlib.sha384), ("EdDSA", hashlib.sha512),
])
def test_at_hash_follows_the_algorithm(provider, alg, digest):
    """O-2: at_hash is the left half of the digest of the signing algorithm."""
    username, password, _ = provider.create_account()
    client = provider.create_client(alg=alg)
    code = Browser(provider.url).login_for_code(client, username, password)["code"]
    tokens = redeem(provider.url, client, code).json()
    header = pyjwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == alg
    jwks = requests.get(f"{provider.url}/jwks.json").json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = pyjwt.decode(tokens["id_token"], pyjwt.PyJWK(key).key, algorithms=[alg],
                          audience=client.client_id)
    full = digest(tokens["access_token"].encode()).digest()
    expected = base64.urlsafe_b64encode(full[: len(full) // 2]).decode().rstrip("=")
    assert claims["at_hash"] == expected
    assert pyjwt.get_unverified_header(tokens["access_token"])["alg"] == alg
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200


def test_unknown_algorithm_is_an_error():
    from idp.oidc.keys import UnsupportedAlgorithmError
    from idp.oidc.tokens import half_hash

    with pytest.raises(UnsupportedAlgorithmError):
        half_hash("token", "HS256")
    with pytest.raises(UnsupportedAlgorithmError):
        half_hash("token", "none")
