"""End to end with node's openid-client (the certified OpenID relying party
library): discovery, code flow with PKCE S256, state and nonce, ID token
validation against the JWKS, UserInfo, refresh token rotation and revocation
(tests/e2e/node/flow.mjs); and the library with its documented defaults
against a client registered with the command line's defaults: login,
refresh, RP-initiated logout (tests/e2e/node/defaults.mjs).

The node dependencies are installed with ``npm ci --prefix tests/e2e/node``
(``make install-test`` does this)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
FLOW = NODE_DIR / "flow.mjs"
DEFAULTS = NODE_DIR / "defaults.mjs"
TIMEOUT = 60


def run_script(script: Path, env: dict[str, str]) -> dict:
    """Run a node script with ``env`` added; returns its last line, parsed as JSON."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the openid-client end-to-end test needs Node >= 20")
    if not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        pytest.fail("tests/e2e/node/node_modules is missing: run "
                    "`npm ci --prefix tests/e2e/node` before the end-to-end tests")
    env = {**os.environ, **env, "NO_PROXY": "127.0.0.1,localhost"}
    try:
        result = subprocess.run([node, str(script)], cwd=NODE_DIR, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script.name} did not finish within {TIMEOUT} s; stderr: {exc.stderr!r}")
    assert result.returncode == 0, (
        f"{script.name} exited {result.returncode}\nstderr:\n{result.stderr}\n"
        f"stdout:\n{result.stdout}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"{script.name} printed nothing; stderr:\n{result.stderr}"
    return json.loads(lines[-1])


def run_flow(provider, client, username: str, password: str) -> dict:
    return run_script(FLOW, {
        "ISSUER": provider.url, "CLIENT_ID": client.client_id,
        "CLIENT_SECRET": client.client_secret or "", "REDIRECT_URI": client.redirect_uri,
        "USERNAME": username, "PASSWORD": password})


def check_result(out: dict, provider, username: str, sub: str) -> None:
    assert out["ok"] is True
    assert out["issuer"] == provider.url
    assert out["sub"] == sub
    assert out["id_token"]["claims"]["sub"] == sub
    assert out["userinfo"]["sub"] == sub
    assert out["userinfo"]["preferred_username"] == username
    assert out["userinfo"]["email"] == f"{username}@example.test"
    assert out["userinfo_after_refresh"]["sub"] == sub
    assert out["refresh"]["rotated"] is True
    assert out["refresh"]["id_token_sub"] == sub
    assert out["refresh_after_revocation"]["error"] == "invalid_grant"


def new_account(provider, name: str) -> tuple[str, str, str]:
    username = f"e2e{uuid.uuid4().hex[:10]}"
    return provider.create_account(username, name=name, email=f"{username}@example.test")


def test_openid_client_confidential(provider):
    username, password, sub = new_account(provider, "E2E Confidential")
    client = provider.create_client()
    assert client.client_secret
    out = run_flow(provider, client, username, password)
    assert out["client_type"] == "confidential"
    check_result(out, provider, username, sub)


def test_openid_client_public(provider):
    username, password, sub = new_account(provider, "E2E Public")
    client = provider.create_client(public=True)
    assert not client.client_secret
    out = run_flow(provider, client, username, password)
    assert out["client_type"] == "public"
    check_result(out, provider, username, sub)


def test_openid_client_documented_defaults(provider):
    """``discovery(server, id, secret)`` as openid-client 6's README starts:
    ClientSecretPost and RS256 expected, against a client registered with
    ``idp clients create``'s defaults (client_secret_basic, RS256, pairwise,
    consent): login with PKCE and a nonce, refresh, and the logout URL from
    ``buildEndSessionUrl`` followed, after which ``prompt=none`` answers
    ``login_required``."""
    from tests.e2e.rp_support import pairwise_sub, register_client, token_requests

    username, password, subject = new_account(provider, "E2E Defaults")
    tag = uuid.uuid4().hex[:8]
    redirect_uri = f"http://127.0.0.1:9/{tag}/callback"
    logged_out = f"http://127.0.0.1:9/{tag}/logged-out"
    client = register_client(provider, "--redirect-uri", redirect_uri,
                             "--post-logout-redirect-uri", logged_out)
    with token_requests(provider) as tokens:
        out = run_script(DEFAULTS, {
            "ISSUER": provider.url, "CLIENT_ID": client["client_id"],
            "CLIENT_SECRET": client["client_secret"], "REDIRECT_URI": redirect_uri,
            "POST_LOGOUT_REDIRECT_URI": logged_out, "USERNAME": username, "PASSWORD": password})

    assert out["ok"] is True
    assert out["token_endpoint_auth_method"] is None  # the library's default, ClientSecretPost
    assert tokens == [{"grant_type": "authorization_code", "method": "client_secret_post"},
                      {"grant_type": "refresh_token", "method": "client_secret_post"}]
    assert out["id_token_alg"] == "RS256"
    sub = pairwise_sub(provider, client["client_id"], subject)
    assert out["sub"] == sub and out["aud"] == client["client_id"] and out["nonce"]
    assert out["refresh_rotated"] is True
    assert out["userinfo"]["sub"] == sub
    assert out["userinfo"]["email"] == f"{username}@example.test"
    assert out["end_session_url"].startswith(f"{provider.url}/logout?")
    assert out["logged_out_at"] == logged_out
    assert out["after_logout"] == {"error": "login_required", "iss": provider.url}
