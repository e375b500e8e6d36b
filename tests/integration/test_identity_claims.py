"""verified_claims (OpenID Connect for Identity Assurance 1.0) under the
realname scope, the resident ID number under idcard, and their metadata."""

from __future__ import annotations

import json

import jwt as pyjwt
import pytest
import requests

from tests.helpers import Browser, hidden_inputs, redeem
from tests.integration.test_step_up import level_2_account


def tokens_for(provider, client, username, password, browser=None, **params):
    browser = browser or Browser(provider.url)
    code = browser.login_for_code(client, username, password, **params)["code"]
    return redeem(provider.url, client, code).json()


def userinfo(provider, token):
    return requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {token}"}).json()


def test_realname_scope_releases_verified_name_and_level(gw):
    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    tokens = tokens_for(provider, client, username, password, browser,
                        scope="openid realname")
    info = userinfo(provider, tokens["access_token"])
    verification = info["verified_claims"]["verification"]
    assert info["verified_claims"]["claims"] == {"name": person.name}
    assert verification["assurance_level"] == "L2"
    assert verification["trust_framework"] == "cn_provincial_gov"
    assert verification["time"].endswith("Z") and "evidence" not in verification
    # Not asked for in the ID token: not there.
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert "verified_claims" not in claims
    # Without the scope, nothing.
    tokens = tokens_for(provider, client, "", "", browser, scope="openid profile")
    assert "verified_claims" not in userinfo(provider, tokens["access_token"])


def test_evidence_and_constraints_on_request(gw):
    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    wanted = {"userinfo": {"verified_claims": {
        "verification": {"trust_framework": {"value": "cn_provincial_gov"}, "evidence": None},
        "claims": {"name": None}}}}
    tokens = tokens_for(provider, client, username, password, browser, scope="openid realname",
                        claims=json.dumps(wanted))
    [evidence] = userinfo(provider, tokens["access_token"])["verified_claims"][
        "verification"]["evidence"]
    assert evidence["type"] == "electronic_record"
    assert evidence["check_details"][0]["check_method"] == "data"
    assert evidence["check_details"][0]["txn"].startswith("SBX-")
    assert evidence["record"]["type"] == "population_register"
    other = {"userinfo": {"verified_claims": {
        "verification": {"trust_framework": {"value": "eidas"}}, "claims": {"name": None}}}}
    tokens = tokens_for(provider, client, "", "", browser, scope="openid realname",
                        claims=json.dumps(other))
    assert "verified_claims" not in userinfo(provider, tokens["access_token"])


def test_unverified_account_has_no_verified_claims(gw):
    provider, _ = gw
    username, password, _ = provider.create_account()
    client = provider.create_client()
    tokens = tokens_for(provider, client, username, password, scope="openid realname")
    assert "verified_claims" not in userinfo(provider, tokens["access_token"])


def test_idcard_only_for_allowed_clients_with_its_own_consent(gw):
    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    ordinary = provider.create_client()
    tokens = tokens_for(provider, ordinary, username, password, scope="openid idcard")
    assert tokens["scope"] == "openid"
    assert "resident_id_number" not in userinfo(provider, tokens["access_token"])
    allowed = provider.create_client(scope="openid profile realname idcard")
    browser = Browser(provider.url)
    asked = {"id_token": {"resident_id_number": None}}
    page = browser.go(browser.authorize_url(allowed, scope="openid realname idcard",
                                            claims=json.dumps(asked)),
                      username=username, password=password, consent="")
    # A trusted client still asks: the ID number has its own consent line.
    assert "/consent" in page.url
    assert 'data-scope="idcard" class="sensitive"' in page.text
    fields = hidden_inputs(page.text)
    fields["decision"] = "approve"
    approved = browser.session.post(f"{provider.url}/consent", data=fields,
                                    allow_redirects=False)
    callback = browser.go(provider.url + approved.headers["Location"])
    code = dict(p.split("=", 1) for p in callback.headers["Location"].split("?")[1]
                .split("&"))["code"]
    tokens = redeem(provider.url, allowed, code).json()
    info = userinfo(provider, tokens["access_token"])
    assert info["resident_id_number"] == person.id_number
    birth = person.id_number[6:14]
    assert info["verified_claims"]["claims"]["birthdate"] == \
        f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"
    # Never in a token, even when the claims parameter asks for it there.
    for token in (tokens["id_token"], tokens["access_token"]):
        assert person.id_number not in json.dumps(
            pyjwt.decode(token, options={"verify_signature": False}), ensure_ascii=False)


def test_idcard_removed_from_the_registration_is_no_longer_released(gw):
    """The ID number goes only to a client registered with ``idcard`` now:
    once the scope leaves the registration, neither the access token issued
    before nor one refreshed from the old grant releases it."""
    from dataclasses import replace

    from idp.clients.service import find_client, registered_metadata, update_client

    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    client = provider.create_client(scope="openid realname idcard offline_access")
    tokens = tokens_for(provider, client, username, password,
                        scope="openid realname idcard offline_access")
    assert userinfo(provider, tokens["access_token"])["resident_id_number"] == person.id_number
    with provider.app.app_context():
        update_client(provider.runtime, client.client_id, replace(
            registered_metadata(find_client(client.client_id)),
            scope="openid realname offline_access"))
    refreshed = requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    assert refreshed["scope"] == "openid realname offline_access"
    for token in (tokens["access_token"], refreshed["access_token"]):
        info = userinfo(provider, token)
        assert info["verified_claims"]["verification"]["assurance_level"] == "L2"
        assert "resident_id_number" not in info
        assert person.id_number not in json.dumps(info, ensure_ascii=False)


def test_discovery_lists_levels_and_identity_assurance(gw):
    provider, _ = gw
    meta = requests.get(f"{provider.url}/.well-known/openid-configuration").json()
    assert meta["acr_values_supported"] == ["L1", "L2", "L3", "L4"]
    assert meta["verified_claims_supported"] is True
    assert meta["trust_frameworks_supported"] == ["cn_provincial_gov"]
    assert {"realname", "idcard"} <= set(meta["scopes_supported"])
    assert "verified_claims" in meta["claims_supported"]
    assert meta["claims_in_verified_claims_supported"] == ["name", "birthdate"]


@pytest.mark.parametrize("max_age,released", [(10**20, True), (10**14, True), (-5, False),
                                              (3600, True)])
def test_time_constraint_of_any_size(gw, max_age, released):
    """Regression: a max_age too large for a date was a 500 at the token
    endpoint (the code used up) and at userinfo."""
    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    asked = {"verified_claims": {"verification": {"time": {"max_age": max_age}},
                                 "claims": {"name": None}}}
    tokens = tokens_for(provider, client, username, password, scope="openid realname",
                        claims=json.dumps({"id_token": asked, "userinfo": asked}))
    assert "id_token" in tokens
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert ("verified_claims" in claims) is released
    assert ("verified_claims" in userinfo(provider, tokens["access_token"])) is released
