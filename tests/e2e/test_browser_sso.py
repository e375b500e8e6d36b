"""End to end in a real browser: Playwright (npm ``playwright-core``) drives the
system's Chromium through single sign-on and single logout across two
department sites (the example relying party), through a
``response_mode=form_post`` authorization whose auto-submitting form must work
under the provider's Content-Security-Policy, and through a step-up: a relying
party asks for level L3 and a level-2 user verifies a card and adds an SMS code
on the provider's pages.

The browser side is tests/e2e/node/browser_sso.mjs. Requirements (``.ci/run``
installs both): Chromium at /usr/bin/chromium (``apt-get install chromium``)
and ``npm ci --prefix tests/e2e/node``. Screenshots go to a temporary folder,
or to ``$E2E_SCREENSHOT_DIR`` when set (e.g. to keep them as CI artifacts)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from tests.helpers import TestClient as RegisteredClient
from tests.helpers import redeem

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "browser_sso.mjs"
CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 90
# Spaces, both quotes and HTML metacharacters: form_post must deliver it exactly.
FORM_POST_STATE = """a b"c 'd' &amp; <e>"""


def require_browser() -> str:
    """The node binary; fails (never skips) with how to install what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the browser end-to-end test needs Node >= 20")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it with "
                    "`apt-get update && apt-get install -y chromium` (.ci/run does this)")
    if not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("tests/e2e/node/node_modules/playwright-core is missing: run "
                    "`npm ci --prefix tests/e2e/node` (make install-test does this)")
    return node


@dataclass
class Receiver:
    """A client's redirect URI that records the form_post requests it receives."""

    url: str
    server: Any
    posts: list[list[tuple[str, str]]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Flask("form_post_receiver")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    handle = Receiver(f"http://127.0.0.1:{server.server_port}/cb", server)

    @app.post("/cb")
    def callback() -> str:
        handle.posts.append(list(request.form.items(multi=True)))
        return "ok"

    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handle
    server.shutdown()
    server.server_close()


def form_post_authorize_url(provider, client: RegisteredClient) -> str:
    query = {"response_type": "code", "client_id": client.client_id,
             "redirect_uri": client.redirect_uri, "scope": "openid profile",
             "state": FORM_POST_STATE, "nonce": secrets.token_urlsafe(12),
             "response_mode": "form_post"}
    return f"{provider.url}/authorize?{urlencode(query)}"


def run_browser(env: dict[str, str]) -> dict:
    node = require_browser()
    try:
        result = subprocess.run([node, str(SCRIPT)], cwd=NODE_DIR,
                                env={**os.environ, **env, "NO_PROXY": "127.0.0.1,localhost"},
                                capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"browser_sso.mjs did not finish within {TIMEOUT} s; "
                    f"stdout: {exc.stdout!r}; stderr: {exc.stderr!r}")
    assert result.returncode == 0, (
        f"browser_sso.mjs exited {result.returncode}\nstderr:\n{result.stderr}\n"
        f"stdout:\n{result.stdout}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"browser_sso.mjs printed nothing; stderr:\n{result.stderr}"
    return json.loads(lines[-1])


@pytest.fixture
def step_up_site(tmp_path_factory, database_url):
    """A provider wired to a sandbox gateway (with its outbox page), a relying
    party on it, and a level-2 account: the environment of the step-up scenario."""
    from tests.integration.test_step_up import level_2_account
    from tests.relying_parties import start_relying_party
    from tests.sandbox_support import start_gateway_provider

    provider, gateway = start_gateway_provider(tmp_path_factory, database_url,
                                               outbox_page=True)
    rp = start_relying_party(provider, "Housing Provident Fund")
    _username, password, person = level_2_account(provider, gateway)
    yield {"STEP_UP_PROVIDER": provider.url, "STEP_UP_RP": rp.url,
           "STEP_UP_IDENTIFIER": person.id_number, "STEP_UP_PASSWORD": password,
           "STEP_UP_OUTBOX": f"{gateway.url}/outbox",
           "STEP_UP_NAME": person.name}
    rp.stop()
    provider.stop()
    gateway.stop()


def test_browser_single_sign_on_logout_and_form_post(provider, relying_parties, receiver,
                                                     step_up_site, tmp_path):
    require_browser()
    username, password, _sub = provider.create_account(name="Browser User",
                                                       email="browser@example.test")
    first, second = relying_parties
    client = provider.create_client(trusted=True, redirect_uri=receiver.url)
    screenshots = Path(os.environ.get("E2E_SCREENSHOT_DIR") or tmp_path / "screenshots")

    out = run_browser({
        "PROVIDER": provider.url, "RP_A": first.url, "RP_B": second.url,
        "USERNAME": username, "PASSWORD": password, "SCREENSHOT_DIR": str(screenshots),
        "FORM_POST_AUTHORIZE_URL": form_post_authorize_url(provider, client),
        "FORM_POST_CALLBACK": receiver.url, "CHROMIUM": CHROMIUM, **step_up_site,
    })

    print(json.dumps(out, indent=1))  # shown with pytest -rP
    assert out["ok"] is True
    assert [entry for entry in out["console_errors"] if entry["provider"]] == []
    for name in ("01-provider-login", "02-rp-a-logged-in", "06-step-up-verify",
                 "08-step-up-rp-level-3"):
        assert (screenshots / f"{name}.png").stat().st_size > 0
    # The step-up scenario ended on the relying party with level L3 and the verified name.
    final = out["steps"][-1]
    assert final["acr"].startswith("L3") and step_up_site["STEP_UP_NAME"] in final["verified"]

    # The auto-submitted form reached the client once, with the exact values.
    assert len(receiver.posts) == 1, receiver.posts
    fields = dict(receiver.posts[0])
    assert sorted(name for name, _ in receiver.posts[0]) == sorted(fields)
    assert fields["state"] == FORM_POST_STATE
    assert fields["iss"] == provider.url
    assert fields["code"]
    assert "error" not in fields
    # ... and the code is a real one.
    tokens = redeem(provider.url, client, fields["code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["id_token"]
