"""End to end with pyoidc (the ``oic`` package) 1.7 and ``client_secret_post``,
as its documentation builds a relying party (tests/e2e/rp/pyoidc/app.py):
discovery, the authentication request, ``parse_response``, the token request
with ``authn_method="client_secret_post"`` (the library verifies the ID
token's signature against the JWKS, and its nonce), UserInfo, a refresh
(``do_access_token_refresh``) and the end-session request the browser
follows. The client is registered with the command line's defaults (its
secret is accepted in the body although it is registered
``client_secret_basic``); the app runs in its own virtualenv
(tests/e2e/rp_support.py)."""

from __future__ import annotations

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


def test_pyoidc_client_secret_post_login_refresh_logout(provider, tmp_path):
    username, password, subject = new_account(provider, "Pyoidc User")
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    client = register_client(provider, "--redirect-uri", f"{site}/callback",
                             "--post-logout-redirect-uri", f"{site}/logged-out")
    assert client["token_endpoint_auth_method"] == "client_secret_basic"

    env = rp_env(provider, client, tmp_path)
    with token_requests(provider) as tokens, serve_rp("pyoidc", port, env, tmp_path):
        agent = UserAgent(provider.url)
        sub = pairwise_sub(provider, client["client_id"], subject)

        # Login: authorization, token (client_secret_post), UserInfo.
        page = agent.go(f"{site}/login", username=username, password=password)
        assert page.url == f"{site}/whoami", agent.describe()
        first = page.json()
        assert first["id_token_alg"] == "RS256"
        assert first["id_token"]["sub"] == sub
        assert first["id_token"]["aud"] == [client["client_id"]]
        assert first["id_token"]["iss"] == provider.url
        [request] = agent.visits(provider.url, "/authorize")
        assert first["id_token"]["nonce"] == request["nonce"]
        assert first["userinfo"]["sub"] == sub
        assert first["userinfo"]["email"] == f"{username}@example.test"
        assert first["refresh_token"]

        # Refresh: new, rotated tokens; UserInfo with the new access token.
        page = agent.go(f"{site}/refresh")
        assert page.url == f"{site}/whoami", agent.describe()
        refreshed = page.json()["refreshed"]
        assert refreshed["access_token"] != first["access_token"]
        assert refreshed["refresh_token"] != first["refresh_token"]
        assert refreshed["id_token"]["sub"] == sub
        assert refreshed["userinfo"]["sub"] == sub
        assert jwt.decode(refreshed["access_token"], options={"verify_signature": False})[
            "sub"] == sub
        assert tokens == [{"grant_type": "authorization_code", "method": "client_secret_post"},
                          {"grant_type": "refresh_token", "method": "client_secret_post"}]

        # End session: the browser goes to the provider with the ID token as
        # hint and comes back to the registered post-logout URI.
        agent.trail.clear()
        page = agent.go(f"{site}/logout")
        assert page.url.startswith(f"{site}/logged-out?state="), agent.describe()
        assert page.text == "Logged out"
        [end_session] = agent.visits(provider.url, "/logout")
        hint = jwt.decode(end_session["id_token_hint"], options={"verify_signature": False})
        assert hint["sub"] == sub and hint["aud"] == client["client_id"]

        # The SSO session ended: the next login asks for the password.
        page = agent.go(f"{site}/login")
        assert page.url.startswith(f"{provider.url}/login"), agent.describe()
