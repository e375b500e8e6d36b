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


def test_parallel_guesses_cannot_exceed_the_account_limit(make_provider):
    import concurrent.futures

    from tests.helpers import hidden_inputs

    # Past the free failures one attempt at a time holds the wait; a long
    # first delay keeps it held for the whole burst.
    limited = make_provider(throttle={"account_failures": 5, "ip_failures": 1000,
                                      "first_delay": 300})
    username, _password, _ = limited.create_account()

    def guess(_):
        session = requests.Session()
        fields = hidden_inputs(session.get(f"{limited.url}/login").text)
        fields.update(username=username, password="wrong guess!")
        return session.post(f"{limited.url}/login", data=fields).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(guess, range(24)))
    assert codes.count(401) <= 5
    assert codes.count(429) >= 19


def test_form_post_delivers_values_exactly(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    state = 'a b%20c"<>{"j":1}&amp;'
    page = browser.go(browser.authorize_url(client, state=state, response_mode="form_post"),
                      username=username, password=password)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    from html.parser import HTMLParser

    fields = {}

    class Form(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "input":
                fields[attrs["name"]] = attrs["value"]
            if tag == "form":
                fields["_action"] = attrs["action"]

    Form().feed(page.text)
    assert fields["state"] == state
    assert fields["_action"] == client.redirect_uri
    assert fields["code"] and fields["iss"] == provider.url


def test_token_request_with_repeated_parameters(provider):
    client = provider.create_client(grant_types=["client_credentials"])
    response = requests.post(f"{provider.url}/token", data=[
        ("grant_type", "client_credentials"), ("grant_type", "authorization_code")],
        auth=client.auth)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    response = requests.post(f"{provider.url}/token", data=[
        ("grant_type", "client_credentials"), ("scope", "email"), ("scope", "phone")],
        auth=client.auth)
    assert response.json()["error"] == "invalid_request"


def test_two_client_authentication_methods_are_refused(provider):
    client = provider.create_client(grant_types=["client_credentials"])
    both = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": client.client_id,
        "client_secret": client.client_secret}, auth=client.auth)
    assert both.json()["error"] == "invalid_request"
    other = provider.create_client(grant_types=["client_credentials"])
    mismatch = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": other.client_id}, auth=client.auth)
    assert mismatch.json()["error"] == "invalid_client"
    assert requests.post(f"{provider.url}/introspect", data={
        "token": "x", "client_id": other.client_id}, auth=client.auth).status_code in (400, 401)


def test_refresh_token_introspection_only_by_its_client(provider):
    from tests.helpers import redeem

    username, password, _ = provider.create_account()
    owner, other = provider.create_client(), provider.create_client()
    code = Browser(provider.url).login_for_code(owner, username, password,
                                                scope="openid offline_access")["code"]
    tokens = redeem(provider.url, owner, code).json()
    assert requests.post(f"{provider.url}/introspect", data={"token": tokens["refresh_token"]},
                         auth=other.auth).json() == {"active": False}
    assert requests.post(f"{provider.url}/introspect", data={"token": tokens["refresh_token"]},
                         auth=owner.auth).json()["active"] is True


def test_repeated_scopes_are_merged(provider):
    import jwt as pyjwt

    client = provider.create_client(grant_types=["client_credentials"])
    response = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "scope": "email " * 2000}, auth=client.auth)
    assert response.status_code == 200
    assert pyjwt.decode(response.json()["access_token"],
                        options={"verify_signature": False})["scope"] == "email"


def test_redirect_uri_optional_at_token_when_absent_from_authorization(provider):
    """RFC 6749 §4.1.3: only a redirect_uri sent with the authorization
    request must be repeated at the token endpoint."""
    from tests.helpers import callback_params

    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    url = (f"{provider.url}/authorize?response_type=code&client_id={client.client_id}"
           "&scope=profile&state=s")
    response = browser.go(url, username=username, password=password)
    code = callback_params(response)["code"]
    token = requests.post(f"{provider.url}/token", data={
        "grant_type": "authorization_code", "code": code}, auth=client.auth)
    assert token.status_code == 200, token.text


def test_protocol_endpoints_answer_json_errors(provider):
    for method, path in (("get", "/token"), ("get", "/introspect"), ("get", "/revoke")):
        response = getattr(requests, method)(f"{provider.url}{path}")
        assert response.status_code == 405
        assert response.json()["error"] == "invalid_request"
    big = requests.post(f"{provider.url}/token", data={"x": "y" * 70_000})
    assert big.status_code == 413 and big.json()["error"] == "invalid_request"


def test_pages_are_not_cached_and_csrf_failure_is_explained(provider):
    page = requests.get(f"{provider.url}/login")
    assert page.headers["Cache-Control"] == "no-store"
    refused = requests.post(f"{provider.url}/login", data={"username": "a", "password": "b"})
    assert refused.status_code == 400 and "reload the page" in refused.text


def test_instance_files_are_private(provider):
    import os
    import stat

    instance = provider.runtime.settings["instance_path"]
    assert stat.S_IMODE(os.stat(instance).st_mode) == 0o700
    for name in ("store.sqlite3", "secrets.json"):
        path = os.path.join(instance, name)
        if os.path.exists(path):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_registration_checks_email(provider):
    from idp.accounts.service import AccountError, create_account

    with provider.app.app_context():
        try:
            create_account(provider.runtime, "mailcheck1", "long enough pass", email="nope")
        except AccountError as exc:
            assert exc.field == "email"
        else:
            raise AssertionError("invalid e-mail accepted")


def test_trusted_proxy_supplies_the_client_address(make_provider):
    """Behind one proxy, throttling counts the address the proxy reports."""
    proxied = make_provider(trusted_proxies=1, throttle={"ip_failures": 2,
                                                         "account_failures": 100})
    from tests.helpers import hidden_inputs

    def attempt(address, username, password):
        session = requests.Session()
        fields = hidden_inputs(session.get(f"{proxied.url}/login").text)
        fields.update(username=username, password=password)
        return session.post(f"{proxied.url}/login", data=fields, allow_redirects=False,
                            headers={"X-Forwarded-For": address}).status_code

    assert attempt("203.0.113.7", "x1", "bad password") == 401
    assert attempt("203.0.113.7", "x2", "bad password") == 401
    username, password, _ = proxied.create_account()
    assert attempt("203.0.113.7", username, password) == 429
    assert attempt("198.51.100.9", username, password) == 303


def _suspend(provider, username):
    from idp.accounts.service import find_by_username
    from idp.extensions import db

    with provider.app.app_context():
        find_by_username(username).status = "suspended"
        db.session.commit()


def test_suspended_account_tokens_are_inactive_at_introspection(provider):
    from tests.helpers import redeem

    username, password, _ = provider.create_account()
    client = provider.create_client()
    code = Browser(provider.url).login_for_code(client, username, password,
                                                scope="openid offline_access")["code"]
    tokens = redeem(provider.url, client, code).json()
    _suspend(provider, username)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert requests.post(f"{provider.url}/introspect", data={"token": token},
                             auth=client.auth).json() == {"active": False}


def test_assertion_with_float_expiry_or_long_jti_is_refused(provider):
    import time
    import uuid

    from joserfc import jwt as jose_jwt
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", parameters={"kid": "f1"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]})
    now = int(time.time())
    for exp, jti in ((1e300, uuid.uuid4().hex), (float(now + 10**12), uuid.uuid4().hex),
                     (now + 60, "j" * 5000)):
        assertion = jose_jwt.encode({"alg": "ES256", "kid": "f1"}, {
            "iss": client.client_id, "sub": client.client_id, "aud": provider.url,
            "iat": now, "exp": exp, "jti": jti}, key, algorithms=["ES256"])
        response = requests.post(f"{provider.url}/token", data={
            "grant_type": "client_credentials", "client_id": client.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion})
        assert response.status_code in (400, 401), (exp, response.text)
        assert response.json()["error"] == "invalid_client"


def test_deeply_nested_json_is_refused_not_crashed(provider):
    import base64

    client = provider.create_client()
    response = requests.get(f"{provider.url}/authorize", params={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uri, "scope": "openid", "claims": "[" * 1000},
        allow_redirects=False)
    assert response.status_code == 302 and "error=invalid_request" in response.headers["Location"]

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    header = b64(b'{"alg":"ES256"}')
    deep = b64(b'{"sub":"x","iss":"x","x":' + b"[" * 2500 + b"]" * 2500 + b"}")
    response = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": f"{header}.{deep}.AAAA"})
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


def test_nul_bytes_are_refused(provider):
    from tests.helpers import hidden_inputs

    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username="ali\x00ce", password="whatever pass")
    assert session.post(f"{provider.url}/login", data=fields).status_code == 400
    response = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": "x\x00y"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    page = requests.get(f"{provider.url}/authorize", params={"client_id": "a\x00b"})
    assert page.status_code == 400


def test_consent_counts_only_for_the_account_that_gave_it(provider):
    from tests.helpers import hidden_inputs

    dave = provider.create_account()
    erin = provider.create_account()
    client = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client), username=dave[0], password=dave[1],
                      consent="")
    assert "/consent" in page.url
    fields = hidden_inputs(page.text)
    # erin logs in, in the same browser, before dave's approval is sent.
    other = hidden_inputs(browser.session.get(f"{provider.url}/login").text)
    other.update(username=erin[0], password=erin[1])
    browser.session.post(f"{provider.url}/login", data=other)
    fields["decision"] = "approve"
    refused = browser.session.post(f"{provider.url}/consent", data=fields)
    assert refused.status_code == 400


def test_one_approval_gives_one_code(provider):
    import concurrent.futures

    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False)
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client), username=username, password=password,
                      consent="")
    from tests.helpers import hidden_inputs

    fields = hidden_inputs(page.text)
    fields["decision"] = "approve"
    approved = browser.session.post(f"{provider.url}/consent", data=fields,
                                    allow_redirects=False)
    resume = provider.url + approved.headers["Location"]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(
            lambda _: browser.session.get(resume, allow_redirects=False), range(6)))
    codes = [r for r in results if r.status_code == 302 and "code=" in r.headers["Location"]]
    assert len(codes) == 1


def test_rp_can_post_logout(provider):
    from tests.helpers import redeem

    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password)["code"]
    id_token = redeem(provider.url, client, code).json()["id_token"]
    response = browser.session.post(f"{provider.url}/logout", data={
        "id_token_hint": id_token, "post_logout_redirect_uri": client.post_logout_redirect_uri},
        allow_redirects=False)
    assert response.status_code == 303
    after = browser.go(browser.authorize_url(client, prompt="none"))
    assert "error=login_required" in after.headers["Location"]


def test_claims_sub_value_of_another_user_needs_login(provider):
    import json

    username, password, sub = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password)
    other_sub = provider.create_account()[2]
    claims = json.dumps({"id_token": {"sub": {"value": other_sub}}})
    response = browser.go(browser.authorize_url(client, claims=claims, prompt="none"))
    assert "error=login_required" in response.headers["Location"]
    same = json.dumps({"id_token": {"sub": {"value": sub}}})
    assert "code=" in browser.go(browser.authorize_url(client, claims=same)).headers["Location"]


def test_essential_acr_that_cannot_be_met(provider):
    import json

    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password)
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["3"]}}})
    response = browser.go(browser.authorize_url(client, claims=claims))
    assert "error=unmet_authentication_requirements" in response.headers["Location"]
    voluntary = json.dumps({"id_token": {"acr": {"values": ["3"]}}})
    assert "code=" in browser.go(browser.authorize_url(client, claims=voluntary)).headers[
        "Location"]


def test_oversized_authorization_request_is_refused(provider):
    client = provider.create_client()
    response = requests.post(f"{provider.url}/authorize", data={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uri, "scope": "openid",
        "state": "s" * 2000, "login_hint": "h" * 2000, "nonce": "n" * 250,
        "acr_values": "a" * 2000, "display": "d" * 2000}, allow_redirects=False)
    assert response.status_code == 400 and "too large" in response.text


def test_parallel_guesses_cannot_exceed_the_ip_limit(make_provider):
    import concurrent.futures
    import uuid

    from tests.helpers import hidden_inputs

    limited = make_provider(throttle={"account_failures": 100, "ip_failures": 6})

    def guess(_):
        session = requests.Session()
        fields = hidden_inputs(session.get(f"{limited.url}/login").text)
        fields.update(username="spray" + uuid.uuid4().hex[:6], password="wrong guess!")
        return session.post(f"{limited.url}/login", data=fields).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(guess, range(24)))
    assert codes.count(401) <= 6 and codes.count(429) >= 18


def test_codes_per_session_are_limited(make_provider):
    limited = make_provider(throttle={"codes_per_session": 3})
    username, password, _ = limited.create_account()
    client = limited.create_client()
    browser = Browser(limited.url)
    browser.login_for_code(client, username, password)
    for _ in range(2):
        assert "code=" in browser.go(browser.authorize_url(client)).headers["Location"]
    refused = browser.go(browser.authorize_url(client)).headers["Location"]
    assert refused.startswith(client.redirect_uri)
    assert "error=temporarily_unavailable" in refused


def test_purge_deletes_only_spent_grants(provider):
    from datetime import timedelta

    from sqlalchemy import func, select

    from idp.authorizations.models import Grant, RefreshToken
    from idp.authorizations.service import purge_expired
    from idp.extensions import db
    from idp.timeutil import utcnow
    from tests.helpers import redeem

    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    kept = redeem(provider.url, client, browser.login_for_code(
        client, username, password, scope="openid offline_access")["code"]).json()
    # Access tokens only: spent once they expire. (A code never redeemed
    # leaves no grant row at all: its grant lives in the store.)
    assert "refresh_token" not in redeem(provider.url, client, browser.login_for_code(
        client, "", "", scope="openid")["code"]).json()
    with provider.app.app_context():
        old = utcnow() - timedelta(days=2)
        for grant in db.session.scalars(select(Grant).where(Grant.client_id == client.client_id)):
            grant.created_at = old
        db.session.commit()
        counts = purge_expired(provider.runtime)
        assert counts["grants"] >= 1
        left = db.session.scalar(select(func.count()).select_from(Grant).where(
            Grant.client_id == client.client_id))
        assert left == 1
        assert db.session.scalar(select(func.count()).select_from(RefreshToken).join(
            Grant, Grant.id == RefreshToken.grant_id).where(
            Grant.client_id == client.client_id)) == 1
    refreshed = requests.post(f"{provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": kept["refresh_token"]},
        auth=client.auth)
    assert refreshed.status_code == 200
