"""Protocol and account rules tested without HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
from types import SimpleNamespace

import pytest

from idp.authn import throttle
from idp.clients.cache import SECRET_PURPOSE, ClientInfo
from idp.config import ConfigError, load_settings
from idp.oidc.claims import ClaimsRequestError, parse_claims_request, select_claims
from idp.oidc.tokens import half_hash
from idp.security import DecryptionError, decrypt, encrypt, keyed_hash
from idp.sessions import add_relying_party, create_session, load_session
from idp.store.embedded import EmbeddedStore


@pytest.fixture
def store(tmp_path):
    return EmbeddedStore(str(tmp_path / "store.sqlite3"))


def test_half_hash_matches_spec_example():
    # OIDC Core §A.3: at_hash of the example access token.
    assert half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == \
        "77QmUPtjPfzWtF2AnpK9RQ"


@pytest.mark.parametrize("alg,fn", [("ES384", hashlib.sha384), ("RS512", hashlib.sha512),
                                    ("EdDSA", hashlib.sha512)])
def test_half_hash_digest_per_alg(alg, fn):
    digest = fn(b"abc").digest()
    assert half_hash("abc", alg) == base64.urlsafe_b64encode(
        digest[: len(digest) // 2]).decode().rstrip("=")


def test_settings_env_overrides_and_types(tmp_path):
    settings = load_settings({"instance_path": str(tmp_path)}, environ={
        "IDP_ISSUER": "https://id.example.test", "IDP_TOKENS__ACCESS_TOKEN_TTL": "300",
        "IDP_SESSION__COOKIE_SECURE": "true"})
    assert settings["issuer"] == "https://id.example.test"
    assert settings["tokens"]["access_token_ttl"] == 300
    assert settings["session"]["cookie_secure"] is True
    with pytest.raises(TypeError):
        settings["issuer"] = "x"


def test_settings_errors(tmp_path):
    with pytest.raises(ConfigError, match="access_token_ttl"):
        load_settings({"instance_path": str(tmp_path)},
                      environ={"IDP_TOKENS__ACCESS_TOKEN_TTL": "ten"})
    with pytest.raises(ConfigError, match="issuer"):
        load_settings({"instance_path": str(tmp_path), "issuer": "https://x.test/"}, environ={})
    with pytest.raises(ConfigError, match="https"):
        load_settings({"instance_path": str(tmp_path), "mode": "production",
                       "issuer": "http://x.test"}, environ={})


def test_unknown_settings_are_warned(tmp_path):
    with pytest.warns(UserWarning, match="IDP_TOKENS__ACCESS_TOKN_TTL"):
        load_settings({"instance_path": str(tmp_path)},
                      environ={"IDP_TOKENS__ACCESS_TOKN_TTL": "1"})
    with pytest.warns(UserWarning, match="tokens.nope"):
        load_settings({"instance_path": str(tmp_path), "tokens": {"nope": 1}}, environ={})


def test_claims_request_parsing():
    assert parse_claims_request(None) is None
    parsed = parse_claims_request(json.dumps({"userinfo": {"email": None}, "x": {}}))
    assert parsed == {"userinfo": {"email": None}}
    for bad in ("[]", "{", json.dumps({"id_token": []}), json.dumps({"id_token": {"a": 1}})):
        with pytest.raises(ClaimsRequestError):
            parse_claims_request(bad)


def test_claims_follow_scope_and_request():
    from datetime import datetime

    account = SimpleNamespace(username="u", updated_at=datetime(2026, 1, 1), name="N",
                              email="e@x.test", email_verified=True,
                              phone_number_verified=False)
    assert select_claims(account, "openid", None, by_scope=True) == {}
    assert select_claims(account, "openid email", None, by_scope=True) == {
        "email": "e@x.test", "email_verified": True}
    # ID token next to an access token: only explicitly requested claims.
    assert select_claims(account, "openid email", None, by_scope=False) == {}
    assert select_claims(account, "openid email", {"email": None, "name": None},
                         by_scope=False) == {"email": "e@x.test"}
    # The phone number goes to userinfo only, even when the ID token asks.
    asked = {"phone_number": None, "phone_number_verified": None}
    assert select_claims(account, "openid phone", asked, by_scope=False,
                         phone_number="+8613900000001") == {"phone_number_verified": False}
    assert select_claims(account, "openid phone", asked, by_scope=True,
                         phone_number="+8613900000001")["phone_number"] == "+8613900000001"


def _client(**kw) -> ClientInfo:
    base = dict(client_id="c", name="C", secret_hash=keyed_hash(b"k" * 32, "s3cret",
                SECRET_PURPOSE), redirect_uris=("https://a.test/cb",),
                post_logout_redirect_uris=(), grant_types=("authorization_code",),
                scope="openid profile", token_endpoint_auth_method="client_secret_basic",
                trusted=False, alg="ES256", jwks=None, hmac_key=b"k" * 32)
    base.update(kw)
    return ClientInfo(**base)


def test_client_rules():
    client = _client()
    assert client.check_redirect_uri("https://a.test/cb")
    assert not client.check_redirect_uri("https://a.test/cb/")
    assert client.check_client_secret("s3cret")
    assert not client.check_client_secret("s3cret ")
    assert not client.check_client_secret(None)
    assert client.get_allowed_scope("openid email profile") == "openid profile"
    assert client.check_response_type("code") and not client.check_response_type("token")
    assert not _client(secret_hash=None).check_client_secret("")


def test_loopback_redirect_uris_match_on_any_port():
    """RFC 8252 §7.3: only the port of a loopback IP literal may differ, for
    a native app, which is a public client (§8.4)."""
    client = _client(redirect_uris=("http://127.0.0.1/cb", "http://[::1]:7000/cb?a=b",
                                    "http://localhost/cb"),
                     token_endpoint_auth_method="none", secret_hash=None)
    assert client.check_redirect_uri("http://127.0.0.1:61000/cb")
    assert client.check_redirect_uri("http://[::1]/cb?a=b")
    assert client.check_redirect_uri("http://[::1]:1/cb?a=b")
    for uri in ("http://localhost:61000/cb", "http://127.0.0.1:61000/cb/",
                "http://[::1]:7000/cb", "http://127.0.0.1:61000/cb?a=b", "https://127.0.0.1/cb",
                "http://127.0.0.1:61000/cb#x", None):
        assert not client.check_redirect_uri(uri), uri
    # The client's own strictness is untouched for other URIs.
    assert not _client().check_redirect_uri("https://a.test:8443/cb")


def test_a_confidential_clients_loopback_redirect_uri_matches_exactly():
    """RFC 9700 §2.1, RFC 8252 §8.4: a client with a secret or keys is no
    native app; its loopback redirect URI keeps its port."""
    for method in ("client_secret_basic", "client_secret_post", "private_key_jwt"):
        client = _client(redirect_uris=("http://127.0.0.1:7198/cb",),
                         token_endpoint_auth_method=method)
        assert client.check_redirect_uri("http://127.0.0.1:7198/cb")
        assert not client.check_redirect_uri("http://127.0.0.1:5555/cb"), method
        assert not client.check_redirect_uri("http://127.0.0.1/cb"), method


def test_sessions(store):
    session = create_session(store, 7, ["pwd"], 60)
    loaded = load_session(store, session.handle)
    assert loaded.account_id == 7 and loaded.amr == ["pwd"] and loaded.sid == session.sid
    # The public sid is not the cookie: it opens nothing.
    assert session.sid != session.handle and load_session(store, session.sid) is None
    add_relying_party(store, loaded, "c1")
    add_relying_party(store, loaded, "c1")
    assert load_session(store, session.handle).client_ids == ["c1"]
    assert load_session(store, None) is None and load_session(store, "x" * 100) is None


def test_throttle(store):
    limits = {"account_failures": 2, "account_window": 60, "ip_failures": 3, "ip_window": 60,
              "device_failures": 2, "first_delay": 60, "max_delay": 60}
    # Two attempts are reserved against alice; the third is refused.
    throttle.reserve_attempt(store, limits, "alice", "10.0.0.1")
    throttle.reserve_attempt(store, limits, "alice", "10.0.0.1")
    with pytest.raises(throttle.ThrottledError) as info:
        throttle.reserve_attempt(store, limits, "alice", "10.0.0.2")
    assert 0 < info.value.retry_after <= 60
    # A success clears the account and gives the IP reservation back.
    throttle.note_success(store, limits, "alice", "10.0.0.2")
    throttle.reserve_attempt(store, limits, "alice", "10.0.0.2")
    # Attempts from one IP count until it is full, whatever the account.
    throttle.reserve_attempt(store, limits, "bob", "10.0.0.9")
    throttle.reserve_attempt(store, limits, "carol", "10.0.0.9")
    throttle.reserve_attempt(store, limits, "dave", "10.0.0.9")
    with pytest.raises(throttle.ThrottledError):
        throttle.reserve_attempt(store, limits, "erin", "10.0.0.9")
    throttle.note_success(store, limits, "dave", "10.0.0.9")
    throttle.reserve_attempt(store, limits, "erin", "10.0.0.9")


def test_aead_round_trip_and_tamper():
    key = b"x" * 32
    token = encrypt(key, b"secret", b"kid1")
    assert decrypt(key, token, b"kid1") == b"secret"
    with pytest.raises(DecryptionError):
        decrypt(key, token, b"kid2")
    with pytest.raises(DecryptionError):
        decrypt(b"y" * 32, token, b"kid1")


def test_config_file_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"instance_path": str(tmp_path)},
                      environ={"IDP_CONFIG": str(tmp_path / "missing.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("issuer = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"instance_path": str(tmp_path)}, environ={"IDP_CONFIG": str(bad)})


@pytest.mark.parametrize("override,message", [
    ({"tokens": {"access_token_ttl": 0}}, "access_token_ttl"),
    ({"tokens": {"authorization_code_ttl": 3600}}, "authorization_code_ttl"),
    ({"keys": {"retired_key_publish_seconds": 10}}, "retired_key_publish_seconds"),
    ({"server": {"workers": 0}}, "workers"),
    ({"server": {"protocol_threads": -1}}, "protocol_threads"),
    ({"trusted_proxies": -1}, "trusted_proxies"),
])
def test_settings_ranges(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({"instance_path": str(tmp_path), **override}, environ={})


def test_postgres_url_forms_use_psycopg(tmp_path):
    for url in ("postgres://u@h/db", "postgresql://u@h/db"):
        settings = load_settings({"instance_path": str(tmp_path), "database_url": url},
                                 environ={})
        assert settings["database_url"] == "postgresql+psycopg://u@h/db"


def test_client_jwks_rules():
    from idp.clients.metadata import ClientError, _check_jwks

    public = {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}
    _check_jwks({"keys": [public]})
    for bad in (None, {}, {"keys": []}, {"keys": [dict(public, d="secret")]},
                {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}):
        with pytest.raises(ClientError):
            _check_jwks(bad)
