"""End to end with django-allauth 65's ``openid_connect`` provider,
configured as its documentation shows (tests/e2e/rp/django_allauth/settings.py):
login through its views creates the Django user and the social account;
signing in again through the SSO session renews the tokens allauth stores;
logout through its logout view and on to the provider's end_session
endpoint, whose sign-out question the user answers (allauth keeps no raw ID
token to send as a hint).

allauth reads the provider's metadata from ``server_url`` and, seeing
``client_secret_post`` among ``token_endpoint_auth_methods_supported``,
sends the secret in the body; it checks the ID token against the JWKS with
the algorithm the token names. It has no refresh of its own: it stores the
access and refresh tokens (``SOCIALACCOUNT_STORE_TOKENS``; ``offline_access``
added to its scopes) for the site to use, which the test does once. The
client is registered with the command line's defaults; the app runs in its
own virtualenv (tests/e2e/rp_support.py)."""

from __future__ import annotations

from urllib.parse import urljoin

import requests

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

LOGIN = "/accounts/oidc/provincial/login/"


def sign_in(agent: UserAgent, site: str, **credentials) -> requests.Response:
    """allauth's login page asks to continue (a POST with Django's CSRF token)."""
    page = agent.go(f"{site}{LOGIN}")
    assert page.status_code == 200, agent.describe()
    action, fields = form_fields(page.text)
    return agent.go(urljoin(page.url, action), method="POST", data=fields, **credentials)


def test_django_allauth_login_tokens_logout(provider, tmp_path):
    username, password, subject = new_account(provider, "Allauth User")
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    client = register_client(provider,
                             "--redirect-uri", f"{site}/accounts/oidc/provincial/login/callback/",
                             "--post-logout-redirect-uri", f"{site}/")

    env = rp_env(provider, client, tmp_path)
    with token_requests(provider) as tokens, serve_rp("django_allauth", port, env, tmp_path):
        agent = UserAgent(provider.url)

        # Login creates the user and the social account (uid = the client's sub).
        page = sign_in(agent, site, username=username, password=password)
        assert page.url == f"{site}/whoami", agent.describe()
        first = page.json()
        sub = pairwise_sub(provider, client["client_id"], subject)
        assert first["authenticated"] is True and first["users"] == 1
        assert first["provider"] == "provincial" and first["uid"] == sub
        assert first["username"] == username
        assert first["email"] == f"{username}@example.test"
        assert first["name"] == "Allauth User"
        assert first["extra_data"]["userinfo"]["sub"] == sub
        assert first["extra_data"]["id_token"]["sub"] == sub
        assert first["extra_data"]["id_token"]["aud"] == client["client_id"]
        [request] = agent.visits(provider.url, "/authorize")
        assert request["code_challenge_method"] == "S256"
        assert first["access_token"] and first["refresh_token"]

        # allauth's "refresh": signing in again (the SSO session answers, no
        # password) renews the stored tokens of the same social account.
        agent.trail.clear()
        page = sign_in(agent, site)
        assert page.url == f"{site}/whoami", agent.describe()
        assert agent.visits(provider.url, "/login") == []
        again = page.json()
        assert again["uid"] == sub and again["users"] == 1
        assert again["access_token"] != first["access_token"]
        assert again["refresh_token"] and again["refresh_token"] != first["refresh_token"]
        assert tokens == [{"grant_type": "authorization_code", "method": "client_secret_post"}] * 2

        # What a site does with the refresh token allauth stored (allauth has
        # no call for it): a refresh_token grant, with the secret in the body
        # as allauth itself sends it.
        refreshed = requests.post(f"{provider.url}/token", timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": again["refresh_token"],
            "client_id": client["client_id"], "client_secret": client["client_secret"]})
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["refresh_token"] != again["refresh_token"]

        # Logout: allauth's logout page (POST), then the provider's
        # end_session endpoint, whose question the user confirms, then home.
        page = agent.go(f"{site}/accounts/logout/")
        action, fields = form_fields(page.text, "/accounts/logout/")
        agent.trail.clear()
        page = agent.go(urljoin(page.url, action), method="POST", data=fields,
                        confirm_logout=True)
        assert page.url == f"{site}/" and "Sign in" in page.text, agent.describe()
        [end_session, confirmed] = agent.visits(provider.url, "/logout")
        assert end_session == {"client_id": client["client_id"],
                               "post_logout_redirect_uri": f"{site}/"}
        assert agent.go(f"{site}/whoami").json() == {"authenticated": False}

        # The SSO session ended: signing in again asks for the password.
        page = sign_in(agent, site)
        assert page.url.startswith(f"{provider.url}/login"), agent.describe()
