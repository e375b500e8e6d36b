"""End to end with mozilla-django-oidc 5.0 (Django 5.2), configured as its
documentation shows (tests/e2e/rp/mozilla_django_oidc/settings.py): login
through its views, the Django user it creates, the silent renewal of its
SessionRefresh middleware (``prompt=none`` once
``OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS`` have passed) with the tokens it
stores, and logout through its logout view and ``OIDC_OP_LOGOUT_URL_METHOD``
to the provider's end_session endpoint.

The library sends its client secret in the token request's body
(``client_secret_post``) and, told ``OIDC_RP_SIGN_ALGO = "RS256"``, accepts
only RS256 ID tokens checked against ``OIDC_OP_JWKS_ENDPOINT``: the client is
registered with the command line's defaults, which give both.
The app runs in its own virtualenv (tests/e2e/rp_support.py)."""

from __future__ import annotations

import time
from urllib.parse import urljoin

import jwt

from tests.conftest import free_port
from tests.e2e.rp_support import (
    UserAgent,
    form_fields,
    new_account,
    pairwise_sub,
    register_client,
    rp_env,
    serve_rp,
    token_requests,
)

#: OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS: short, so the test sees a renewal.
RENEW_SECONDS = 3


def test_mozilla_django_oidc_login_refresh_logout(provider, tmp_path):
    username, password, subject = new_account(provider, "Mozilla User")
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    client = register_client(provider, "--redirect-uri", f"{site}/oidc/callback/",
                             "--post-logout-redirect-uri", f"{site}/")
    assert client["id_token_signed_response_alg"] == "RS256"
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    env = {**rp_env(provider, client, tmp_path), "RENEW_SECONDS": str(RENEW_SECONDS)}

    with token_requests(provider) as tokens, serve_rp("mozilla_django_oidc", port, env, tmp_path):
        agent = UserAgent(provider.url)

        # Login: /oidc/authenticate/ -> provider (password, consent) -> /oidc/callback/.
        page = agent.go(f"{site}/oidc/authenticate/?next=/whoami",
                        username=username, password=password)
        assert page.url == f"{site}/whoami", agent.describe()
        first = page.json()
        assert first["authenticated"] is True
        assert first["email"] == f"{username}@example.test"
        assert first["users"] == 1
        header = jwt.get_unverified_header(first["id_token"])
        claims = jwt.decode(first["id_token"], options={"verify_signature": False})
        assert header["alg"] == "RS256"
        assert claims["aud"] == client["client_id"]
        assert claims["sub"] == pairwise_sub(provider, client["client_id"], subject)
        [request] = agent.visits(provider.url, "/authorize")
        assert request["scope"] == "openid email" and request["nonce"]
        assert tokens == [{"grant_type": "authorization_code", "method": "client_secret_post"}]

        # Refresh: once the renewal time has passed, the middleware sends the
        # browser to the provider with prompt=none; the SSO session answers
        # without a login page and the site stores new tokens.
        time.sleep(max(0.0, first["id_token_expiration"] - time.time()) + 0.2)
        agent.trail.clear()
        page = agent.go(f"{site}/whoami")
        assert page.url == f"{site}/whoami", agent.describe()
        renewed = page.json()
        [silent] = agent.visits(provider.url, "/authorize")
        assert silent["prompt"] == "none"
        assert agent.visits(provider.url, "/login") == []
        assert len(agent.visits(site, "/oidc/callback/")) == 1
        assert renewed["authenticated"] is True and renewed["username"] == first["username"]
        assert renewed["users"] == 1
        assert renewed["id_token"] != first["id_token"]
        assert renewed["access_token"] != first["access_token"]
        assert renewed["id_token_expiration"] > first["id_token_expiration"]
        renewed_claims = jwt.decode(renewed["id_token"], options={"verify_signature": False})
        assert renewed_claims["sub"] == claims["sub"] and renewed_claims["sid"] == claims["sid"]
        assert len(tokens) == 2 and tokens[1] == tokens[0]

        # Logout: the library's logout view (POST with Django's CSRF token)
        # -> the provider's end_session endpoint -> back to the site's home.
        home = agent.go(f"{site}/")
        action, fields = form_fields(home.text, "/oidc/logout/")
        agent.trail.clear()
        page = agent.go(urljoin(site, action), method="POST", data=fields)
        assert page.url == f"{site}/" and "Sign in" in page.text, agent.describe()
        [end_session] = agent.visits(provider.url, "/logout")
        assert end_session["id_token_hint"] == renewed["id_token"]
        assert end_session["post_logout_redirect_uri"] == f"{site}/"
        assert agent.go(f"{site}/whoami").json() == {"authenticated": False}

        # The SSO session ended too: signing in again asks for the password.
        page = agent.go(f"{site}/oidc/authenticate/")
        assert page.url.startswith(f"{provider.url}/login"), agent.describe()
        assert 'name="password"' in page.text
