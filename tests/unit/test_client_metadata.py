"""The registration rules as one value (issue 8): ClientMetadata and
validate, without a database or HTTP."""

from __future__ import annotations

import time

import pytest

from idp.clients.cache import SECRET_PURPOSE, ClientInfo
from idp.clients.metadata import (
    DEFAULT_SCOPES,
    ClientError,
    ClientMetadata,
    auth_method_for,
    validate,
)
from idp.security import keyed_hash

LEVELS = ("L1", "L2", "L3", "L4")
JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}


def test_validate_normalises():
    valid = validate(ClientMetadata(
        "  Civil Affairs  ", ["https://p.example.test/cb", "https://p.example.test/cb"],
        post_logout_redirect_uris=["https://p.example.test/"] * 2,
        allowed_origins=["https://P.Example.test:443", "https://p.example.test"]))
    assert valid.client_name == "Civil Affairs"
    assert valid.redirect_uris == ("https://p.example.test/cb",)
    assert valid.post_logout_redirect_uris == ("https://p.example.test/",)
    assert valid.grant_types == ("authorization_code", "refresh_token")
    assert valid.scope == " ".join(DEFAULT_SCOPES)
    assert valid.allowed_origins == ("https://p.example.test",)
    assert valid.token_endpoint_auth_method == "client_secret_basic" and valid.has_secret
    # Lists are kept as tuples: the value cannot change under a cache.
    assert isinstance(ClientMetadata("X", ["https://a.test/cb"]).redirect_uris, tuple)


def test_public_subjects_keep_no_sector_identifier_uri():
    valid = validate(ClientMetadata("App", ["https://a.example.test/cb"], subject_type="public",
                                    sector_identifier_uri="https://s.example.test/s.json"))
    assert valid.sector_identifier_uri is None


@pytest.mark.parametrize("fields,message", [
    ({"client_name": " "}, "name must not be empty"),
    ({"grant_types": ["password"]}, "grant type 'password' is not supported"),
    ({"token_endpoint_auth_method": "tls_client_auth"}, "auth method 'tls_client_auth'"),
    ({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]},
     "a public client cannot use client_credentials"),
    ({"token_endpoint_auth_method": "none", "strict_auth_method": True},
     "a strict authentication method applies to client_secret_basic"),
    ({"token_endpoint_auth_method": "none", "resource_server": True},
     "it cannot be a public client"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "needs the client's public keys"),
    ({"jwks": JWKS}, "public keys (jwks) are used only with private_key_jwt"),
    ({"redirect_uris": []}, "authorization_code needs at least one redirect URI"),
    ({"id_token_signed_response_alg": "HS256"}, "algorithm 'HS256' is not supported"),
    ({"min_acr": "L9"}, "minimum acr 'L9' is not a level"),
    ({"kiosk": True}, "a kiosk authenticates with private_key_jwt"),
    ({"subject_type": "shared"}, "subject type 'shared' is not supported"),
    ({"redirect_uris": ["https://a.test/cb#x"]}, "must not contain a fragment"),
    ({"redirect_uris": ["https://a.test/cb", "https://b.test/cb"]}, "several hosts"),
    ({"sector_identifier_uri": "http://s.test/s.json"}, "must be an https URL"),
    ({"allowed_origins": ["https://a.test/"]}, "must have no path"),
    ({"post_logout_redirect_uris": ["http://a.test/"]}, "plain http is allowed only"),
    ({"scope": "openid admin"}, "scope 'admin' is not supported"),
    ({"backchannel_logout_uri": "com.example.app:/logout"}, "must be an absolute https URL"),
    ({"backchannel_logout_uri": "http://a.test/logout"}, "plain http is allowed only"),
    ({"backchannel_logout_uri": "https://a.test/logout#x"}, "must not contain a fragment"),
    ({"backchannel_logout_uri": "https://a.test:x/logout"}, "has an invalid port"),
    ({"frontchannel_logout_uri": "https://b.test/logout"}, "of a redirect URI"),
    ({"frontchannel_logout_uri": "https://a.test:8443/logout"}, "of a redirect URI"),
    ({"backchannel_logout_session_required": True}, "needs a back-channel logout URI"),
    ({"frontchannel_logout_session_required": True}, "needs a front-channel logout URI"),
])
def test_every_rule_has_its_message(fields, message):
    metadata = ClientMetadata(**{"client_name": "C", "redirect_uris": ["https://a.test/cb"],
                                 **fields})
    with pytest.raises(ClientError) as refused:
        validate(metadata, acr_values=LEVELS, fetch=lambda uri: [])
    assert message in str(refused.value)


def test_logout_uris_are_kept_as_registered():
    valid = validate(ClientMetadata(
        "C", ["https://a.test/cb", "http://127.0.0.1:8080/cb"],
        backchannel_logout_uri="http://127.0.0.1:9000/backchannel?x=1",
        backchannel_logout_session_required=True,
        frontchannel_logout_uri="https://a.test:443/frontchannel",
        frontchannel_logout_session_required=True, subject_type="public"),
        acr_values=LEVELS)
    assert valid.backchannel_logout_uri == "http://127.0.0.1:9000/backchannel?x=1"
    assert valid.frontchannel_logout_uri == "https://a.test:443/frontchannel"
    assert valid.backchannel_logout_session_required
    assert validate(ClientMetadata("C", ["https://a.test/cb"], backchannel_logout_uri="",
                                   subject_type="public")).backchannel_logout_uri is None


def test_the_sector_document_is_fetched_last():
    """A registration broken otherwise is refused without reaching out."""
    def fetch(uri):
        raise AssertionError("fetched")

    with pytest.raises(ClientError, match="scope"):
        validate(ClientMetadata("C", ["https://a.test/cb"], scope="nope",
                                sector_identifier_uri="https://s.test/s.json"), fetch=fetch)
    listed = validate(ClientMetadata("C", ["https://a.test/cb", "https://b.test/cb"],
                                     sector_identifier_uri="https://s.test/s.json"),
                      fetch=lambda uri: ["https://a.test/cb", "https://b.test/cb"])
    assert listed.sector_identifier_uri == "https://s.test/s.json"


def test_auth_method_of_the_command_line():
    assert auth_method_for(False, None) == "client_secret_basic"
    assert auth_method_for(True, None) == auth_method_for(True, "none") == "none"
    assert auth_method_for(False, "private_key_jwt") == "private_key_jwt"
    with pytest.raises(ClientError, match="a public client authenticates with method 'none'"):
        auth_method_for(True, "client_secret_post")


def _client(**kw) -> ClientInfo:
    key = b"k" * 32
    base = dict(client_id="c", name="C", secret_hash=keyed_hash(key, "new", SECRET_PURPOSE),
                redirect_uris=(), post_logout_redirect_uris=(), grant_types=(),
                scope="openid", token_endpoint_auth_method="client_secret_basic",
                trusted=False, alg="ES256", jwks=None, hmac_key=key)
    base.update(kw)
    return ClientInfo(**base)


def test_a_rotated_secret_is_accepted_until_its_grace_ends():
    old = keyed_hash(b"k" * 32, "old", SECRET_PURPOSE)
    within = _client(previous_secret_hash=old, previous_secret_expires_at=time.time() + 60)
    assert within.check_client_secret("new") and within.check_client_secret("old")
    assert not within.check_client_secret("other")
    after = _client(previous_secret_hash=old, previous_secret_expires_at=time.time() - 1)
    assert after.check_client_secret("new") and not after.check_client_secret("old")
    assert not _client(previous_secret_hash=old).check_client_secret("old")


@pytest.mark.parametrize("fields,message", [
    ({"redirect_uris": ["https://a.test/cb"]}, "a CAS service has no redirect URIs"),
    ({"token_endpoint_auth_method": "client_secret_basic"}, "a CAS service has no secret"),
    ({"backchannel_logout_uri": "https://a.test/bc"}, "no a back-channel logout URI"),
    ({"cas_services": [], "cas_proxy_callbacks": ["https://a.test/pgt"]},
     "needs at least one service URL"),
    ({"cas_services": ["https://a.test/*"]}, "wildcards are not allowed"),
    ({"cas_services": ["ftp://a.test/"]}, "must be an absolute https URL"),
    ({"cas_services": ["http://a.test/"]}, "plain http is allowed only"),
    ({"cas_services": ["https://a.test/app/../x"]}, "dot segment"),
    ({"cas_services": ["https://a.test/app/%2E%2E/x"]}, "dot segment"),
    ({"cas_services": ["https://u:p@a.test/"]}, "user information"),
    ({"cas_proxy_callbacks": ["https://a.test/pgt#x"]}, "fragment"),
    ({"scope": "openid admin"}, "scope 'admin' is not supported"),
    ({"scope": "openid legacy"}, "needs the client's department"),
])
def test_every_cas_service_rule_has_its_message(fields, message):
    metadata = ClientMetadata(**{"client_name": "Old portal",
                                 "cas_services": ["https://a.test/app/"],
                                 "token_endpoint_auth_method": "none", **fields})
    with pytest.raises(ClientError) as refused:
        validate(metadata, acr_values=LEVELS, fetch=lambda uri: [])
    assert message in str(refused.value)


def test_a_cas_service_is_kept_as_registered():
    valid = validate(ClientMetadata(
        "Old portal", cas_services=["https://a.test/app/", "https://a.test/one",
                                    "https://a.test/one"],
        cas_proxy_callbacks=["https://a.test/pgt"], token_endpoint_auth_method="none",
        department="H"), acr_values=LEVELS, fetch=lambda uri: [])
    assert valid.cas_services == ("https://a.test/app/", "https://a.test/one")
    assert valid.grant_types == () and "legacy" in valid.scope.split()
    assert valid.cas_proxy_callbacks == ("https://a.test/pgt",)
