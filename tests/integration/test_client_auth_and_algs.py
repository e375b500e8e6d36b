"""Client authentication: both ways of sending a secret unless registered
strict, messages that say what was used and what is registered, audited
failures (issue 7); private_key_jwt (RFC 7523, case O-5); per-client
signing algorithms (case O-2)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid

import jwt as pyjwt
import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, RSAKey

from tests import helpers
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
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed: used private_key_jwt, registered "
                             "for client_secret_basic or client_secret_post."}


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
    """O-2: at_hash is the left half of the digest of the ID token's signing
    algorithm, also now that the access token is always ES256 (issue 7)."""
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
    assert pyjwt.get_unverified_header(tokens["access_token"])["alg"] == "ES256"
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


# --- client_secret_basic and client_secret_post (issue 7) ---------------------

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


def _secret_client(provider, method: str, strict: bool = False, **options):
    return provider.create_client(
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        auth_method=method, strict_auth_method=strict, **options)


def _send(provider, path: str, client, method: str, secret: str | None = None,
          **data) -> requests.Response:
    """POST ``data`` to ``path`` authenticating by ``method`` with the
    client's secret (or ``secret``)."""
    secret = client.client_secret if secret is None else secret
    if method == "client_secret_basic":
        return requests.post(f"{provider.url}{path}", data=data, auth=(client.client_id, secret))
    return requests.post(f"{provider.url}{path}", data={
        **data, "client_id": client.client_id, "client_secret": secret})


@pytest.mark.parametrize("registered", SECRET_METHODS)
@pytest.mark.parametrize("used", SECRET_METHODS)
def test_a_secret_is_accepted_either_way_at_every_endpoint(provider, registered, used):
    """Issue 7: pyoidc and mozilla-django-oidc send client_secret_post to a
    client registered with the default client_secret_basic (and others the
    other way round); both work at the token, revocation and introspection
    endpoints, one method per request."""
    username, password, _ = provider.create_account()
    client = _secret_client(provider, registered)
    code = Browser(provider.url).login_for_code(client, username, password,
                                                scope="openid offline_access")["code"]
    tokens = _send(provider, "/token", client, used, grant_type="authorization_code",
                   code=code, redirect_uri=client.redirect_uri)
    assert tokens.status_code == 200, tokens.text
    tokens = tokens.json()
    refreshed = _send(provider, "/token", client, used, grant_type="refresh_token",
                      refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert _send(provider, "/token", client, used,
                 grant_type="client_credentials").status_code == 200
    introspected = _send(provider, "/introspect", client, used,
                         token=refreshed.json()["access_token"])
    assert introspected.status_code == 200 and introspected.json()["active"] is True
    revoked = _send(provider, "/revoke", client, used, token=refreshed.json()["refresh_token"])
    assert revoked.status_code == 200
    assert _send(provider, "/introspect", client, used,
                 token=refreshed.json()["access_token"]).json() == {"active": False}


@pytest.mark.parametrize("endpoint,data", [
    ("/token", {"grant_type": "client_credentials"}),
    ("/revoke", {"token": "anything"}),
    ("/introspect", {"token": "anything"}),
])
def test_strict_client_accepts_only_its_method(provider, endpoint, data):
    """A client registered --strict-auth-method gets invalid_client for the
    other way of sending the secret, whether the secret is right or not
    (the method is checked first, so the answer reveals nothing about it)."""
    basic = _secret_client(provider, "client_secret_basic", strict=True)
    post = _secret_client(provider, "client_secret_post", strict=True)
    assert _send(provider, endpoint, basic, "client_secret_basic", **data).status_code == 200
    assert _send(provider, endpoint, post, "client_secret_post", **data).status_code == 200
    for secret in (None, "wrong-secret"):
        refused = _send(provider, endpoint, basic, "client_secret_post", secret, **data)
        # RFC 7662 §2.3: invalid credentials at introspection are always a 401.
        if endpoint == "/introspect":
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"].startswith('Basic realm="idp"')
        else:
            assert refused.status_code == 400
            assert "WWW-Authenticate" not in refused.headers
        assert refused.json() == {
            "error": "invalid_client",
            "error_description": "Client authentication failed: used client_secret_post, "
                                 "registered for client_secret_basic only."}
        refused = _send(provider, endpoint, post, "client_secret_basic", secret, **data)
        assert refused.status_code == 401
        assert refused.json()["error_description"] == (
            "Client authentication failed: used client_secret_basic, registered for "
            "client_secret_post only.")
        assert refused.headers["WWW-Authenticate"].startswith(
            'Basic realm="idp", error="invalid_client"')


def test_wrong_secret_says_which_method_was_used(provider):
    """RFC 6749 §5.2: 401 with a Basic challenge when the client tried HTTP
    Basic; a wrong secret in the body is a 400 with no challenge."""
    client = _secret_client(provider, "client_secret_basic")
    basic = _send(provider, "/token", client, "client_secret_basic", "wrong",
                  grant_type="client_credentials")
    assert basic.status_code == 401
    assert basic.json() == {"error": "invalid_client",
                            "error_description": "Client authentication failed: wrong client "
                                                 "secret (used client_secret_basic)."}
    assert basic.headers["WWW-Authenticate"] == (
        'Basic realm="idp", error="invalid_client", error_description="Client authentication '
        'failed: wrong client secret (used client_secret_basic)."')
    post = _send(provider, "/token", client, "client_secret_post", "wrong",
                 grant_type="client_credentials")
    assert post.status_code == 400 and "WWW-Authenticate" not in post.headers
    assert post.json()["error_description"] == (
        "Client authentication failed: wrong client secret (used client_secret_post).")


@pytest.mark.parametrize("method", SECRET_METHODS)
def test_unknown_client_is_named_as_such_without_a_word_on_the_secret(provider, method):
    ghost = helpers.TestClient("no-such-client", "any-secret", "http://127.0.0.1:9/cb")
    response = _send(provider, "/token", ghost, method, grant_type="client_credentials")
    assert response.status_code == (401 if method == "client_secret_basic" else 400)
    assert response.json() == {
        "error": "invalid_client",
        "error_description": f"Client authentication failed: unknown client (used {method})."}


def test_method_of_another_registration_is_named(provider, jwt_client):
    """A private_key_jwt client sending a secret, a confidential client
    sending only its client_id, a public client sending a secret: each
    message says what was used and what the client is registered for."""
    client, _key = jwt_client
    as_post = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": client.client_id,
        "client_secret": "guess"})
    assert as_post.json()["error_description"] == (
        "Client authentication failed: used client_secret_post, registered for private_key_jwt.")
    confidential = _secret_client(provider, "client_secret_basic")
    bare = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": confidential.client_id})
    assert bare.status_code == 400
    assert bare.json()["error_description"] == (
        "Client authentication failed: used none, registered for client_secret_basic or "
        "client_secret_post.")
    public = provider.create_client(public=True)
    with_secret = requests.post(f"{provider.url}/revoke", data={"token": "x"},
                                auth=(public.client_id, "invented"))
    assert with_secret.status_code == 401
    assert with_secret.json()["error_description"] == (
        "Client authentication failed: used client_secret_basic, registered for none.")
    introspection = requests.post(f"{provider.url}/introspect", data={
        "token": "x", "client_id": public.client_id})
    assert introspection.status_code == 401
    assert introspection.json()["error_description"] == (
        "Client authentication failed: the introspection endpoint does not accept none.")


def test_no_credentials_get_a_challenge(provider):
    response = requests.post(f"{provider.url}/introspect", data={"token": "x"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="idp"')
    assert response.json()["error_description"] == (
        "Client authentication failed: no client credentials were sent.")


def test_failed_client_authentication_is_audited_without_a_commit(provider):
    """Each failure is an audit event naming the method used and the one
    registered; it is deferred, so the request itself commits nothing."""
    from sqlalchemy import event, select
    from sqlalchemy.orm import Session

    from idp.audit.models import AuditEvent
    from idp.extensions import db

    client = _secret_client(provider, "client_secret_post", strict=True)
    commits: list[str] = []

    def count(session) -> None:
        commits.append(threading.current_thread().name)

    event.listen(Session, "after_commit", count)
    try:
        wrong_method = _send(provider, "/token", client, "client_secret_basic",
                             grant_type="client_credentials")
        wrong_secret = _send(provider, "/introspect", client, "client_secret_post", "nope",
                             token="x")
        ghost = requests.post(f"{provider.url}/revoke", data={"token": "x"},
                              auth=("ghost-" + uuid.uuid4().hex[:8], "s"))
    finally:
        event.remove(Session, "after_commit", count)
    assert (wrong_method.status_code, wrong_secret.status_code, ghost.status_code) == \
        (401, 401, 401)
    assert [name for name in commits if name != "audit-writer"] == []
    with provider.app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(
            AuditEvent.client_id == client.client_id,
            AuditEvent.event == "client.authentication_failed").order_by(AuditEvent.id)))
        ghost_event = db.session.scalar(select(AuditEvent).where(
            AuditEvent.event == "client.authentication_failed",
            AuditEvent.client_id.is_(None))
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()))
    assert [(e.outcome, e.detail["endpoint"], e.detail["method"], e.detail["registered"],
             e.detail["reason"]) for e in events] == [
        ("failure", "token", "client_secret_basic", "client_secret_post",
         "method_not_registered"),
        ("failure", "introspection", "client_secret_post", "client_secret_post",
         "wrong_secret"),
    ]
    assert ghost_event.detail["reason"] == "unknown_client"
    assert ghost_event.detail["presented_client_id"].startswith("ghost-")
    assert ghost_event.detail["endpoint"] == "revocation"


def test_strict_needs_a_secret_method(provider):
    from idp.clients.metadata import ClientError

    with pytest.raises(ClientError, match="client_secret_basic and client_secret_post only"):
        provider.create_client(public=True, strict_auth_method=True)


# --- ID-token algorithm default and the access-token algorithm (issue 7) -----

def _tokens_of(provider, client) -> dict:
    username, password, _ = provider.create_account()
    code = Browser(provider.url).login_for_code(client, username, password)["code"]
    response = redeem(provider.url, client, code)
    assert response.status_code == 200, response.text
    return response.json()


def _verified(provider, token: str, **options) -> tuple[dict, dict]:
    header = pyjwt.get_unverified_header(token)
    jwks = requests.get(f"{provider.url}/jwks.json").json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert key["alg"] == header["alg"]
    return header, pyjwt.decode(token, pyjwt.PyJWK(key).key, algorithms=[header["alg"]],
                                **options)


def test_clients_registered_without_alg_get_rs256_id_tokens(provider):
    """OIDC Dynamic Client Registration §2: a client that names no
    id_token_signed_response_alg gets RS256 ID tokens; its access tokens are
    still ES256 (tokens.access_token_signing_alg), and at_hash follows the
    ID token's algorithm."""
    from idp.clients.metadata import ClientMetadata
    from idp.clients.models import Client
    from idp.clients.service import create_client
    from idp.extensions import db

    tag = uuid.uuid4().hex[:8]
    redirect_uri = f"http://127.0.0.1:9/{tag}/cb"
    with provider.app.app_context():
        row, secret = create_client(provider.runtime, ClientMetadata(
            f"No alg {tag}", [redirect_uri], trusted=True, subject_type="public"))
        db.session.commit()
        client_id = row.client_id
        assert db.session.get(Client, row.id).id_token_signed_response_alg == "RS256"
    client = helpers.TestClient(client_id, secret, redirect_uri, "RS256")
    tokens = _tokens_of(provider, client)
    header, claims = _verified(provider, tokens["id_token"], audience=client_id)
    assert header["alg"] == "RS256"
    assert claims["at_hash"] == _half_sha256(tokens["access_token"])
    at_header, at_claims = _verified(provider, tokens["access_token"],
                                     options={"verify_aud": False})
    assert (at_header["alg"], at_header["typ"]) == ("ES256", "at+jwt")
    assert at_claims["client_id"] == client_id


def _half_sha256(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def test_signing_keys_of_both_defaults_exist_at_start(make_provider):
    """A provider with no client yet publishes an RS256 key (the ID-token
    default) and an ES256 key (access tokens), so the first token request
    never waits for a key to be generated."""
    fresh = make_provider()
    algs = {k["alg"] for k in requests.get(f"{fresh.url}/jwks.json").json()["keys"]}
    assert {"RS256", "ES256"} <= algs


def test_access_token_algorithm_is_one_setting(make_provider):
    other = make_provider(tokens={"access_token_signing_alg": "ES384"})
    client = other.create_client(alg="RS512")
    tokens = _tokens_of(other, client)
    assert pyjwt.get_unverified_header(tokens["access_token"])["alg"] == "ES384"
    header, claims = _verified(other, tokens["id_token"], audience=client.client_id)
    assert header["alg"] == "RS512"
    full = hashlib.sha512(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(full[:32]).decode().rstrip("=")
    info = requests.get(f"{other.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200


def test_access_token_algorithm_must_be_supported(tmp_path):
    from idp.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="tokens.access_token_signing_alg"):
        load_settings({"instance_path": str(tmp_path),
                       "tokens": {"access_token_signing_alg": "HS256"}}, environ={})


def test_discovery_is_truthful_about_client_authentication(provider, jwt_client):
    """Every endpoint that lists private_key_jwt lists its algorithms (RFC
    8414 §2 MUST), RS256 is offered for ID tokens (OIDC Discovery §3), and
    private_key_jwt works at revocation and introspection as advertised."""
    meta = requests.get(f"{provider.url}/.well-known/openid-configuration").json()
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in meta[f"{endpoint}_endpoint_auth_methods_supported"]
        assert {"ES256", "RS256"} <= set(
            meta[f"{endpoint}_endpoint_auth_signing_alg_values_supported"])
        for method in ("client_secret_basic", "client_secret_post"):
            assert method in meta[f"{endpoint}_endpoint_auth_methods_supported"]
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    client, key = jwt_client
    for path in ("/introspect", "/revoke"):
        response = requests.post(f"{provider.url}{path}", data={
            "token": "x", "client_assertion_type":
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": _assertion(key, client.client_id, provider.url)})
        assert response.status_code == 200, response.text
