"""End to end with oidc-client-ts in Chromium: a single-page app
(tests/e2e/node/spa: the library's own browser build from node_modules, no
CDN) served on its own 127.0.0.1 origin, registered as documented for
browser apps (``idp clients create --public --allowed-origin ORIGIN``),
configured as oidc-client-ts's documentation shows (``UserManager`` with
authority, client_id, redirect URIs and scope; PKCE is its default).
Playwright drives it (tests/e2e/node/spa_oidc_client_ts.mjs):
``signinRedirect``, ``signinRedirectCallback`` with UserInfo, the profile
shown; ``signinSilent``, which holds a refresh token (``offline_access``) and
uses the refresh token grant; ``signoutRedirect``; then a login page again.
Discovery, token and UserInfo requests are cross-origin from the app: the
test checks each was answered with the app's origin allowed (CORS).

Requirements as for tests/e2e/test_browser_sso.py: Chromium at
/usr/bin/chromium and ``npm ci --prefix tests/e2e/node``."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator

import pytest
from flask import Flask, Response, send_file
from werkzeug.serving import make_server

from tests.conftest import free_port
from tests.e2e.rp_support import new_account, pairwise_sub, register_client, token_requests
from tests.e2e.test_browser_sso import CHROMIUM, NODE_DIR, require_browser

SPA_DIR = NODE_DIR / "spa"
SCRIPT = NODE_DIR / "spa_oidc_client_ts.mjs"
LIBRARY = NODE_DIR / "node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js"
TIMEOUT = 90


def run_spa_script(env: dict[str, str]) -> dict:
    """Run the Playwright script; returns its JSON summary."""
    node = require_browser()
    try:
        result = subprocess.run([node, str(SCRIPT)], cwd=NODE_DIR,
                                env={**os.environ, **env, "NO_PROXY": "127.0.0.1,localhost"},
                                capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{SCRIPT.name} did not finish within {TIMEOUT} s; "
                    f"stdout: {exc.stdout!r}; stderr: {exc.stderr!r}")
    assert result.returncode == 0, (
        f"{SCRIPT.name} exited {result.returncode}\nstderr:\n{result.stderr}\n"
        f"stdout:\n{result.stdout}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


@pytest.fixture
def spa(provider) -> Iterator[tuple[str, dict]]:
    """The app served on its own origin, and its client registered with that origin."""
    if not LIBRARY.is_file():
        pytest.fail(f"{LIBRARY} is missing: run `npm ci --prefix tests/e2e/node` "
                    "(make install-test does this)")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    client = register_client(provider, "--public", "--redirect-uri", f"{origin}/callback",
                             "--post-logout-redirect-uri", f"{origin}/",
                             "--allowed-origin", origin)
    app = Flask("spa")
    settings = {"authority": provider.url, "client_id": client["client_id"]}
    config = f"window.SPA_CONFIG = {json.dumps(settings)};\n"

    @app.get("/config.js")
    def config_js() -> Response:
        return Response(config, mimetype="text/javascript")

    @app.get("/oidc-client-ts.min.js")
    def library() -> Response:
        return send_file(LIBRARY, mimetype="text/javascript")

    @app.get("/app.js")
    def app_js() -> Response:
        return send_file(SPA_DIR / "app.js", mimetype="text/javascript")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)

    @app.get("/")
    @app.get("/callback")
    def index() -> Response:
        return send_file(SPA_DIR / "index.html", mimetype="text/html")

    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield origin, client
    server.shutdown()
    server.server_close()


def test_oidc_client_ts_in_chromium(provider, spa):
    origin, client = spa
    username, password, subject = new_account(provider, "SPA User")
    with token_requests(provider) as tokens:
        out = run_spa_script({
            "SPA_URL": origin, "PROVIDER": provider.url, "USERNAME": username,
            "PASSWORD": password, "CHROMIUM": CHROMIUM})
    print(json.dumps(out, indent=1))  # shown with pytest -rP
    assert out["ok"] is True
    assert out["console_errors"] == []
    assert tokens == [{"grant_type": "authorization_code", "method": "none"},
                      {"grant_type": "refresh_token", "method": "none"}]
    steps = {step["name"]: step for step in out["steps"]}

    sub = pairwise_sub(provider, client["client_id"], subject)
    login = steps["signinRedirect, login and consent"]
    assert login["shown"] == {"sub": sub, "name": "SPA User",
                              "email": f"{username}@example.test"}
    assert login["user"]["profile"]["sub"] == sub
    assert login["user"]["refresh_token"]
    renewed = steps["signinSilent with the refresh token"]["user"]
    assert renewed["refresh_token"] != login["user"]["refresh_token"]
    assert renewed["profile"]["sub"] == sub
    assert any(hop.startswith(f"{provider.url}/logout?")
               for hop in steps["signoutRedirect"]["hops"])

    # Every call to the provider came from the app's origin and was allowed
    # for it: discovery (public, "*"), the code and refresh grants and
    # UserInfo (the client's registered origin).
    calls = [(f["method"], f["path"], f["grant_type"]) for f in out["fetches"]]
    assert ("POST", "/token", "authorization_code") in calls
    assert ("POST", "/token", "refresh_token") in calls
    assert ("GET", "/userinfo", None) in calls
    for fetch in out["fetches"]:
        assert fetch["status"] == 200, fetch
        if fetch["path"].startswith("/.well-known/"):
            # A public document (and cached: Chromium may not show the request's headers).
            assert fetch["allow_origin"] == "*", fetch
        else:
            assert fetch["origin"] == origin and fetch["allow_origin"] == origin, fetch
    code_grant = next(f for f in out["fetches"] if f["grant_type"] == "authorization_code")
    assert code_grant["client_id"] == client["client_id"] and code_grant["code_verifier"]
