"""Relying parties built with other people's libraries, run against the live
provider: a scratch virtualenv per library, the library's app served from a
subprocess on 127.0.0.1, clients registered as ``idp clients create`` does,
and a scripted user agent that walks between the app and the provider.

Each library's app is ``tests/e2e/rp/<name>/app.py``, run with the Python of
``<cache>/rp-venvs/<name>``, a virtualenv made once from the pinned
``tests/e2e/rp/<name>/requirements.txt`` and made again only when that file
(or the Python running the tests) changes. ``<cache>`` is ``.cache/`` in the
checkout, or ``$IDP_TEST_CACHE``: ``.ci/run`` keeps it between its two passes,
so the libraries are installed once per run. The libraries never enter the
project's own virtualenv (Django and friends are not its dependencies)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from click.testing import CliRunner

from tests.helpers import hidden_inputs

RP_DIR = Path(__file__).parent / "rp"
REPO = Path(__file__).resolve().parents[2]
#: Seconds a pip install of one library may take (a cold cache downloads wheels).
INSTALL_TIMEOUT = 300
#: Seconds an app may take from start to serving (Django runs its migrations first).
START_TIMEOUT = 60


def cache_dir() -> Path:
    """Where the scratch virtualenvs live: ``$IDP_TEST_CACHE`` or ``<checkout>/.cache``."""
    return Path(os.environ.get("IDP_TEST_CACHE") or REPO / ".cache")


def _fingerprint(requirements: Path) -> str:
    """What a virtualenv was built from: the requirements and the base Python."""
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"{sys.version}\n{getattr(sys, '_base_executable', sys.executable)}".encode())
    return digest.hexdigest()


def rp_python(name: str) -> Path:
    """The Python of the scratch virtualenv for library ``name``, made (or
    remade) from ``tests/e2e/rp/<name>/requirements.txt`` when needed.

    Fails the test (never skips) with pip's output when the install fails.
    """
    requirements = RP_DIR / name / "requirements.txt"
    venv = cache_dir() / "rp-venvs" / name
    python = venv / "bin" / "python"
    marker = venv / ".requirements.sha256"
    wanted = _fingerprint(requirements)
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Two runs sharing the cache must not build the same virtualenv at once.
    with open(venv.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and marker.exists() and marker.read_text() == wanted:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        steps = ([sys.executable, "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  "--no-input", "-r", str(requirements)])
        for command in steps:
            try:
                done = subprocess.run(command, capture_output=True, text=True,
                                      timeout=INSTALL_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.fail(f"installing the {name} relying party took over {INSTALL_TIMEOUT} s: "
                            f"{' '.join(command)}")
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.fail(f"cannot install the {name} relying party ({' '.join(command)}, "
                            f"exit {done.returncode}); it needs PyPI or a pip cache:\n"
                            f"{done.stdout}\n{done.stderr}")
        marker.write_text(wanted)
    return python


@dataclass
class RpApp:
    """A relying-party app serving from a subprocess at ``url``."""

    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        """What the app wrote to standard error so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def serve_rp(name: str, port: int, env: dict[str, str], log_dir: Path) -> Iterator[RpApp]:
    """Run ``tests/e2e/rp/<name>/app.py`` on 127.0.0.1:``port`` with ``env``
    (the app's settings, from its documentation) until the block ends.

    The app prints one line ``serving <url>`` on standard output once it
    accepts requests; what it logs goes to ``log_dir/<name>.log``, which a
    failing test shows.
    """
    python = rp_python(name)
    log = log_dir / f"{name}.log"
    url = f"http://127.0.0.1:{port}"
    app_env = {**os.environ, **env, "RP_PORT": str(port), "RP_URL": url,
               "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
    with open(log, "w") as log_file:
        process = subprocess.Popen([str(python), str(RP_DIR / name / "app.py")],
                                   cwd=RP_DIR / name, env=app_env, stdout=subprocess.PIPE,
                                   stderr=log_file, text=True)
    app = RpApp(name, url, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        line = ""
        while not line.startswith("serving "):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(left, 0))
            if not ready:
                pytest.fail(f"the {name} app did not start within {START_TIMEOUT} s:\n"
                            f"{app.log_text()}")
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"the {name} app exited {process.wait()} before serving:\n"
                            f"{app.log_text()}")
        assert line.split()[1] == url, line
        yield app
    except BaseException:
        # Shown with the failing test's captured output.
        print(f"--- {name} app log ---\n{app.log_text()}")
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def register_client(provider, *args: str) -> dict:
    """Register a client exactly as ``idp clients create --name ... ARGS --json``
    would (the CLI's defaults: a secret, RS256 ID tokens, pairwise subjects,
    consent asked), on the live provider's database; returns the CLI's JSON.
    The running provider sees it at its next request, like every process
    (the client cache follows the store, idp.clients.cache).
    """
    from idp.cli.clients import clients_create

    result = CliRunner().invoke(clients_create, ["--name", "Library test", *args, "--json"],
                                obj=_script_info(provider), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _script_info(provider):
    from flask.cli import ScriptInfo

    return ScriptInfo(create_app=lambda: provider.app, set_debug_flag=False)


@dataclass
class Visit:
    """One request of a :class:`UserAgent`: method, URL and answer's status."""

    method: str
    url: str
    status: int


@dataclass
class UserAgent:
    """A scripted browser for flows that cross the relying party and the
    provider: it follows every redirect between them (both on 127.0.0.1),
    signs in on the provider's login page, approves its consent page and,
    when asked, confirms its sign-out page. Cookies are kept per host as a
    browser does (the app's and the provider's have different names).
    """

    provider_url: str
    session: requests.Session = field(default_factory=requests.Session)
    trail: list[Visit] = field(default_factory=list)

    def go(self, url: str, *, method: str = "GET", data: dict | None = None,
           username: str | None = None, password: str | None = None,
           consent: bool = True, confirm_logout: bool = False,
           max_steps: int = 20) -> requests.Response:
        """Request ``url`` and follow the flow until a page needs something
        not given; returns that last response (a 200 page, or an error)."""
        response = self._send(method, url, data)
        for _ in range(max_steps):
            if response.status_code in (301, 302, 303, 307, 308):
                location = urljoin(response.url, response.headers["Location"])
                if urlsplit(location).hostname != "127.0.0.1":
                    raise AssertionError(f"redirected off the machine: {location}")
                response = self._send("GET", location, None)
                continue
            path = urlsplit(response.url).path
            on_provider = response.url.startswith(self.provider_url)
            if on_provider and response.status_code == 200:
                if path == "/login" and username:
                    fields = hidden_inputs(response.text)
                    fields.update(username=username, password=password)
                    username = None
                    response = self._send("POST", f"{self.provider_url}/login", fields)
                    continue
                if path == "/consent" and consent and 'name="decision"' in response.text:
                    fields = {**hidden_inputs(response.text), "decision": "approve"}
                    consent = False
                    response = self._send("POST", f"{self.provider_url}/consent", fields)
                    continue
                if path == "/logout" and confirm_logout and 'name="confirm"' in response.text:
                    fields = {**hidden_inputs(response.text), "confirm": "yes"}
                    confirm_logout = False
                    response = self._send("POST", f"{self.provider_url}/logout", fields)
                    continue
            return response
        raise AssertionError(f"more than {max_steps} steps: {self.describe()}")

    def _send(self, method: str, url: str, data: dict | None) -> requests.Response:
        response = self.session.request(method, url, data=data, allow_redirects=False,
                                        timeout=30)
        self.trail.append(Visit(method, url, response.status_code))
        print(f"{method} {url} -> {response.status_code}")  # shown when a test fails
        return response

    def visits(self, base: str, path: str) -> list[dict[str, str]]:
        """Query parameters of each visit to ``base + path`` so far, in order."""
        out = []
        for visit in self.trail:
            parts = urlsplit(visit.url)
            if visit.url.startswith(base) and parts.path == path:
                out.append({k: v[0] for k, v in parse_qs(parts.query).items()})
        return out

    def describe(self) -> str:
        """Every request so far, one line each (for assertion messages)."""
        return "\n".join(f"{v.method} {v.url} -> {v.status}" for v in self.trail)


def form_fields(html: str, action_contains: str = "") -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the first form whose action contains
    ``action_contains`` (a relying party's own "continue" or "sign out"
    form); a form without an action posts to its own page (action "")."""
    for match in re.finditer(r"<form\b[^>]*>.*?</form>", html, re.S | re.I):
        found = re.search(r'action="([^"]*)"', match.group(0).split(">", 1)[0])
        action = unescape(found.group(1)) if found else ""
        if action_contains in action:
            return action, hidden_inputs(match.group(0))
    raise AssertionError(f"no form posting to {action_contains!r} in:\n{html[:2000]}")


def new_account(provider, name: str) -> tuple[str, str, str]:
    """An account with a name and an e-mail address; ``(username, password, subject)``."""
    import uuid

    username = f"rp{uuid.uuid4().hex[:10]}"
    return provider.create_account(username, name=name, email=f"{username}@example.test")


def pairwise_sub(provider, client_id: str, subject: str) -> str:
    """The ``sub`` that client ``client_id`` sees for the account ``subject``."""
    from idp.accounts.models import Account
    from idp.extensions import db
    from idp.oidc.subjects import subject_for

    with provider.app.app_context():
        client = provider.runtime.clients.get(client_id)
        account = db.session.query(Account).filter_by(subject=subject).one()
        return subject_for(provider.runtime, client, account)


def rp_env(provider, client: dict, data_dir: Path) -> dict[str, str]:
    """The settings every library's app reads from its environment: the
    issuer, the provider's endpoints as its discovery document names them
    (``TOKEN_ENDPOINT``, ``JWKS_URI``...), the registered client, a secret
    key and a folder for the app's own data."""
    import secrets

    metadata = requests.get(f"{provider.url}/.well-known/openid-configuration",
                            timeout=10).json()
    endpoints = {key.upper(): value for key, value in metadata.items()
                 if key.endswith(("_endpoint", "_uri")) and isinstance(value, str)}
    return {**endpoints, "ISSUER": provider.url, "CLIENT_ID": client["client_id"],
            "CLIENT_SECRET": client.get("client_secret", ""),
            "RP_SECRET_KEY": secrets.token_urlsafe(32), "RP_DATA_DIR": str(data_dir)}


@contextmanager
def token_requests(provider) -> Iterator[list[dict[str, str]]]:
    """Record how each request to the provider's token endpoint authenticated
    while the block runs: a list of ``{"grant_type", "method"}``, ``method``
    being ``client_secret_basic`` (HTTP Basic), ``client_secret_post`` (the
    secret in the body), ``private_key_jwt`` or ``none``. It wraps the live
    server's WSGI app (the request is passed on unchanged) and restores it."""
    from io import BytesIO
    from urllib.parse import parse_qsl

    seen: list[dict[str, str]] = []
    inner = provider.server.app

    def recorder(environ, start_response):
        if environ.get("PATH_INFO") == "/token" and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = BytesIO(body)
            form = dict(parse_qsl(body.decode("utf-8", "replace")))
            if environ.get("HTTP_AUTHORIZATION", "").lower().startswith("basic "):
                method = "client_secret_basic"
            elif "client_secret" in form:
                method = "client_secret_post"
            elif "client_assertion" in form:
                method = "private_key_jwt"
            else:
                method = "none"
            seen.append({"grant_type": form.get("grant_type", ""), "method": method})
        return inner(environ, start_response)

    provider.server.app = recorder
    try:
        yield seen
    finally:
        provider.server.app = inner
