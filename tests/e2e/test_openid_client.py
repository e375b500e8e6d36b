"""End to end with node's openid-client (the certified OpenID relying party
library): discovery, code flow with PKCE S256, state and nonce, ID token
validation against the JWKS, UserInfo, refresh token rotation and revocation.

The node side is tests/e2e/node/flow.mjs; its dependencies are installed with
``npm ci --prefix tests/e2e/node`` (the CI script does this)."""

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
TIMEOUT = 60


def run_flow(provider, client, username: str, password: str) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the openid-client end-to-end test needs Node >= 20")
    if not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        pytest.fail("tests/e2e/node/node_modules is missing: run "
                    "`npm ci --prefix tests/e2e/node` before the end-to-end tests")
    env = {
        **os.environ,
        "ISSUER": provider.url,
        "CLIENT_ID": client.client_id,
        "CLIENT_SECRET": client.client_secret or "",
        "REDIRECT_URI": client.redirect_uri,
        "USERNAME": username,
        "PASSWORD": password,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    try:
        result = subprocess.run([node, str(FLOW)], cwd=NODE_DIR, env=env, capture_output=True,
                                text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"flow.mjs did not finish within {TIMEOUT} s; stderr: {exc.stderr!r}")
    assert result.returncode == 0, (
        f"flow.mjs exited {result.returncode}\nstderr:\n{result.stderr}\nstdout:\n{result.stdout}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"flow.mjs printed nothing; stderr:\n{result.stderr}"
    return json.loads(lines[-1])


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
