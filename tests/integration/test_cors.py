"""Browser apps (issue 7): per-client allowed origins, CORS with preflight
on the token, userinfo, revocation and introspection endpoints (error
answers included), `*` on the public discovery and JWKS documents, and
never a CORS header on the authorization endpoint or pages."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.helpers import Browser, pkce_pair

SPA = "https://spa.example.test"
OTHER_SPA = "https://other-spa.example.test:8443"
STRANGER = "https://stranger.example.test"
CLIENT_ENDPOINTS = [("/token", "POST"), ("/userinfo", "GET"), ("/userinfo", "POST"),
                    ("/revoke", "POST"), ("/introspect", "POST")]


@pytest.fixture(scope="module")
def spa(provider):
    """A public browser app allowed from SPA, and another one from OTHER_SPA."""
    tag = uuid.uuid4().hex[:8]
    client = provider.create_client(public=True, redirect_uri=f"{SPA}/{tag}/cb",
                                    allowed_origins=[SPA])
    other = provider.create_client(public=True, redirect_uri=f"{OTHER_SPA}/{tag}/cb",
                                   allowed_origins=[OTHER_SPA])
    return client, other


def _preflight(provider, path: str, origin: str, method: str = "POST",
               headers: str = "authorization,content-type") -> requests.Response:
    return requests.options(f"{provider.url}{path}", headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def _tokens(provider, client, origin: str | None = None) -> tuple[dict, requests.Response]:
    username, password, _ = provider.create_account()
    verifier, challenge = pkce_pair()
    code = Browser(provider.url).login_for_code(
        client, username, password, scope="openid offline_access", code_challenge=challenge,
        code_challenge_method="S256")["code"]
    response = requests.post(f"{provider.url}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
        "client_id": client.client_id, "code_verifier": verifier},
        headers={"Origin": origin} if origin else {})
    return response.json(), response


def _allowed(response: requests.Response, origin: str) -> bool:
    allowed = response.headers.get("Access-Control-Allow-Origin") == origin
    if allowed:
        assert "Origin" in response.headers["Vary"]
        assert response.headers.get("Access-Control-Allow-Credentials") is None
    return allowed


@pytest.mark.parametrize("path,method", CLIENT_ENDPOINTS)
def test_preflight_is_granted_to_a_registered_origin(provider, spa, path, method):
    response = _preflight(provider, path, SPA, method)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SPA
    assert method in response.headers["Access-Control-Allow-Methods"].split(", ")
    assert response.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    assert response.content == b""


@pytest.mark.parametrize("path,method", CLIENT_ENDPOINTS)
def test_preflight_is_refused_to_other_origins_and_methods(provider, spa, path, method):
    for origin in (STRANGER, "null", SPA + "/", SPA.upper(), "http://spa.example.test"):
        response = _preflight(provider, path, origin, method)
        assert response.status_code == 204
        assert "Access-Control-Allow-Origin" not in response.headers, origin
    wrong_method = _preflight(provider, path, SPA, "DELETE")
    assert "Access-Control-Allow-Origin" not in wrong_method.headers


def test_token_answers_only_the_clients_own_origin(provider, spa):
    """The preflight is granted to any registered origin, so the answer
    itself is checked against the client: OTHER_SPA may not read SPA's
    tokens, and a request without Origin (a server) gets no CORS header."""
    client, _other = spa
    tokens, response = _tokens(provider, client, SPA)
    assert response.status_code == 200 and "access_token" in tokens
    assert _allowed(response, SPA)
    assert response.headers["Access-Control-Expose-Headers"] == "WWW-Authenticate"
    _, foreign = _tokens(provider, client, OTHER_SPA)
    assert foreign.status_code == 200
    assert "Access-Control-Allow-Origin" not in foreign.headers
    _, server_side = _tokens(provider, client)
    assert "Access-Control-Allow-Origin" not in server_side.headers
    refreshed = requests.post(f"{provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": client.client_id}, headers={"Origin": SPA})
    assert refreshed.status_code == 200 and _allowed(refreshed, SPA)


def test_token_errors_are_readable_by_the_clients_origin(provider, spa):
    """An SPA can read its own error answers: invalid_grant, and
    invalid_client for the client it names; an unknown client gets none."""
    client, _other = spa
    bad_code = requests.post(f"{provider.url}/token", data={
        "grant_type": "authorization_code", "code": "nope", "redirect_uri": client.redirect_uri,
        "client_id": client.client_id, "code_verifier": pkce_pair()[0]},
        headers={"Origin": SPA})
    assert bad_code.json()["error"] == "invalid_grant" and _allowed(bad_code, SPA)
    with_secret = requests.post(f"{provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": "x", "client_id": client.client_id,
        "client_secret": "invented"}, headers={"Origin": SPA})
    assert with_secret.json()["error"] == "invalid_client" and _allowed(with_secret, SPA)
    assert "Access-Control-Allow-Origin" not in requests.post(f"{provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": "x", "client_id": client.client_id},
        headers={"Origin": OTHER_SPA}).headers
    unknown = requests.post(f"{provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": "x", "client_id": "no-such-client"},
        headers={"Origin": SPA})
    assert unknown.json()["error"] == "invalid_client"
    assert "Access-Control-Allow-Origin" not in unknown.headers


def test_userinfo_follows_the_tokens_client(provider, spa):
    client, other = spa
    tokens, _ = _tokens(provider, client, SPA)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    ok = requests.get(f"{provider.url}/userinfo", headers={**bearer, "Origin": SPA})
    assert ok.status_code == 200 and _allowed(ok, SPA)
    assert "Access-Control-Allow-Origin" not in requests.get(
        f"{provider.url}/userinfo", headers={**bearer, "Origin": OTHER_SPA}).headers
    # A revoked (or expired) token is still recognisably the client's: the
    # app can read the 401 and its WWW-Authenticate challenge.
    assert requests.post(f"{provider.url}/revoke", data={
        "token": tokens["access_token"], "client_id": client.client_id}).status_code == 200
    revoked = requests.get(f"{provider.url}/userinfo", headers={**bearer, "Origin": SPA})
    assert revoked.status_code == 401 and _allowed(revoked, SPA)
    assert revoked.headers["WWW-Authenticate"].startswith('Bearer realm="idp", '
                                                          'error="invalid_token"')
    forged = requests.get(f"{provider.url}/userinfo", headers={
        "Authorization": "Bearer " + tokens["access_token"][:-4] + "AAAA", "Origin": SPA})
    assert forged.status_code == 401
    assert "Access-Control-Allow-Origin" not in forged.headers


def test_revocation_and_introspection_follow_the_authenticated_client(provider, spa):
    client, _other = spa
    tokens, _ = _tokens(provider, client, SPA)
    revoked = requests.post(f"{provider.url}/revoke", data={
        "token": tokens["refresh_token"], "client_id": client.client_id},
        headers={"Origin": SPA})
    assert revoked.status_code == 200 and _allowed(revoked, SPA)
    missing = requests.post(f"{provider.url}/revoke", data={"client_id": client.client_id},
                            headers={"Origin": SPA})
    assert missing.json()["error"] == "invalid_request" and _allowed(missing, SPA)
    api = provider.create_client(grant_types=["client_credentials"],
                                 allowed_origins=["http://127.0.0.1:8765"])
    seen = requests.post(f"{provider.url}/introspect", data={"token": "x"}, auth=api.auth,
                         headers={"Origin": "http://127.0.0.1:8765"})
    assert seen.json() == {"active": False} and _allowed(seen, "http://127.0.0.1:8765")
    refused = requests.post(f"{provider.url}/introspect", data={"token": "x"},
                            auth=(api.client_id, "wrong"),
                            headers={"Origin": "http://127.0.0.1:8765"})
    assert refused.status_code == 401 and _allowed(refused, "http://127.0.0.1:8765")
    public = requests.post(f"{provider.url}/introspect", data={
        "token": "x", "client_id": client.client_id}, headers={"Origin": SPA})
    assert public.json()["error"] == "invalid_client" and _allowed(public, SPA)


@pytest.mark.parametrize("path", ["/jwks.json", "/.well-known/openid-configuration",
                                  "/.well-known/oauth-authorization-server"])
def test_public_documents_allow_every_origin(provider, path):
    preflight = _preflight(provider, path, STRANGER, "GET", "if-none-match")
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "If-None-Match" in preflight.headers["Access-Control-Allow-Headers"]
    document = requests.get(f"{provider.url}{path}", headers={"Origin": STRANGER})
    assert document.status_code == 200
    assert document.headers["Access-Control-Allow-Origin"] == "*"


def test_no_cors_on_the_authorization_endpoint_or_pages(provider, spa):
    client, _other = spa
    authorize = Browser(provider.url).authorize_url(client)
    for response in (
        requests.options(authorize, headers={"Origin": SPA,
                                             "Access-Control-Request-Method": "GET"}),
        requests.get(authorize, headers={"Origin": SPA}, allow_redirects=False),
        requests.post(f"{provider.url}/authorize", data={"client_id": client.client_id},
                      headers={"Origin": SPA}, allow_redirects=False),
        requests.options(f"{provider.url}/login", headers={
            "Origin": SPA, "Access-Control-Request-Method": "POST"}),
        requests.get(f"{provider.url}/login", headers={"Origin": SPA}),
        requests.get(f"{provider.url}/account", headers={"Origin": SPA},
                     allow_redirects=False),
        requests.options(f"{provider.url}/logout", headers={
            "Origin": SPA, "Access-Control-Request-Method": "POST"}),
    ):
        assert not any(h.lower().startswith("access-control-") for h in response.headers), \
            (response.url, dict(response.headers))


def test_a_new_clients_origin_is_granted_once_committed(provider, spa):
    """The preflight's set of origins is cached like clients, and follows
    the clients' generation in the store like them (issue 8): granted at the
    first request after the registration commits, not before."""
    from idp.clients.metadata import ClientMetadata
    from idp.clients.service import create_client
    from idp.extensions import db

    origin = f"https://new-{uuid.uuid4().hex[:6]}.example.test"
    assert "Access-Control-Allow-Origin" not in _preflight(provider, "/token", origin).headers
    with provider.app.app_context():
        create_client(provider.runtime, ClientMetadata(
            "Late SPA", [f"{origin}/cb"], token_endpoint_auth_method="none",
            allowed_origins=[origin]))
        assert "Access-Control-Allow-Origin" not in \
            _preflight(provider, "/token", origin).headers
        db.session.commit()
    assert _preflight(provider, "/token", origin).headers["Access-Control-Allow-Origin"] == \
        origin


@pytest.mark.parametrize("origin,stored", [
    ("https://App.Example.test", "https://app.example.test"),
    ("https://app.example.test:443", "https://app.example.test"),
    ("https://app.example.test:8443", "https://app.example.test:8443"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://[::1]:3000", "http://[::1]:3000"),
])
def test_origins_are_stored_as_browsers_send_them(provider, origin, stored):
    from idp.clients.models import Client
    from idp.extensions import db

    client = provider.create_client(public=True, allowed_origins=[origin, stored])
    with provider.app.app_context():
        row = db.session.query(Client).filter_by(client_id=client.client_id).one()
        assert row.allowed_origins == [stored]


@pytest.mark.parametrize("origin,message", [
    ("https://app.example.test/", "must have no path (not even /), query or fragment"),
    ("https://app.example.test/spa", "must have no path"),
    ("https://app.example.test?x", "must have no path"),
    ("http://app.example.test", "plain http is allowed only for loopback hosts"),
    ("https://*.example.test", "wildcards are not allowed"),
    ("null", "must look like https://app.example.gov.cn"),
    ("app.example.test", "must look like https://app.example.gov.cn"),
    ("https://user@app.example.test", "must not contain user information"),
    ("https://app.example.test:0", "has an invalid port"),
    ("https://app.example.test:70000", "has an invalid port"),
    ("https://政务.example.test", "write an internationalised host name in punycode"),
])
def test_invalid_origins_are_refused(provider, origin, message):
    from idp.clients.metadata import ClientError

    with pytest.raises(ClientError, match="allowed origin") as info:
        provider.create_client(public=True, allowed_origins=[origin])
    assert message in str(info.value)
