"""End to end with flask-oidc 2.4, configured as its documentation shows
(tests/e2e/rp/flask_oidc/app.py): login through ``@oidc.require_login`` and
its ``/login`` and ``/authorize`` views, the refresh it makes of an expired
access token before a request, and logout through the provider's
end_session endpoint and its ``/logout``.

flask-oidc authenticates at the token endpoint with ``client_secret_post``
(its ``OIDC_INTROSPECTION_AUTH_METHOD`` default, used for every token
request) and takes the ID token's algorithm from discovery; the client is
registered with the command line's defaults. Authlib, under it, counts an
access token as expired 60 s before its ``expires_in`` (its ``leeway``), so
the provider here issues access tokens for 63 s: the token is "expired" 3 s
after it was issued. The app runs in its own virtualenv
(tests/e2e/rp_support.py)."""

from __future__ import annotations

import time

import jwt

from tests.conftest import free_port
from tests.e2e.rp_support import (
    UserAgent,
    new_account,
    pairwise_sub,
    register_client,
    rp_env,
    serve_rp,
    token_requests,
)

#: Access token lifetime, seconds: Authlib's 60 s leeway plus 3.
ACCESS_TOKEN_TTL = 63
LEEWAY = 60


def test_flask_oidc_login_refresh_logout(make_provider, tmp_path):
    provider = make_provider(tokens={"access_token_ttl": ACCESS_TOKEN_TTL})
    username, password, subject = new_account(provider, "Flask User")
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    client = register_client(provider, "--redirect-uri", f"{site}/authorize",
                             "--post-logout-redirect-uri", f"{site}/logout")
    assert client["id_token_signed_response_alg"] == "RS256"

    env = rp_env(provider, client, tmp_path)
    with token_requests(provider) as tokens, serve_rp("flask_oidc", port, env, tmp_path):
        agent = UserAgent(provider.url)

        # Login: a protected page -> the library's /login -> provider -> /authorize.
        page = agent.go(f"{site}/private", username=username, password=password)
        assert page.url == f"{site}/private", agent.describe()
        first = page.json()
        sub = pairwise_sub(provider, client["client_id"], subject)
        assert first["profile"]["sub"] == sub
        assert first["profile"]["email"] == f"{username}@example.test"
        assert first["refresh_token"]
        claims = jwt.decode(first["id_token"], options={"verify_signature": False})
        assert jwt.get_unverified_header(first["id_token"])["alg"] == "RS256"
        assert claims["sub"] == sub and claims["aud"] == client["client_id"]
        assert len(agent.visits(site, "/authorize")) == 1

        # Refresh: once the access token counts as expired, the next request
        # renews it with the refresh token (rotated by the provider); the
        # browser never leaves the site.
        time.sleep(max(0.0, first["expires_at"] - LEEWAY - time.time()) + 1.1)
        agent.trail.clear()
        page = agent.go(f"{site}/private")
        assert [visit.url for visit in agent.trail] == [f"{site}/private"], agent.describe()
        renewed = page.json()
        assert renewed["access_token"] != first["access_token"]
        assert renewed["refresh_token"] and renewed["refresh_token"] != first["refresh_token"]
        assert renewed["expires_at"] > first["expires_at"]
        assert jwt.decode(renewed["access_token"], options={"verify_signature": False})[
            "sub"] == sub
        assert renewed["profile"] == first["profile"]
        assert tokens == [{"grant_type": "authorization_code", "method": "client_secret_post"},
                          {"grant_type": "refresh_token", "method": "client_secret_post"}]

        # Logout: the provider's end_session endpoint, then the library's /logout.
        agent.trail.clear()
        page = agent.go(f"{site}/signout")
        assert page.url == f"{site}/" and page.text == "Not logged in", agent.describe()
        [end_session] = agent.visits(provider.url, "/logout")
        assert end_session["id_token_hint"] == renewed["id_token"]
        assert len(agent.visits(site, "/logout")) == 1

        # Both sessions ended: the protected page sends the browser to the
        # provider's login page again.
        page = agent.go(f"{site}/private")
        assert page.url.startswith(f"{provider.url}/login"), agent.describe()
