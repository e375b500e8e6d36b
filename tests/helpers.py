"""Test helpers: a handle on a live provider, factories, and a scripted browser."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
from flask import Flask

DEFAULT_PASSWORD = "correct horse battery"
#: The source checkout the tests run in (README.md, babel.cfg, examples/...).
CHECKOUT = Path(__file__).resolve().parents[1]


def close_app(app: Flask) -> None:
    """Close what ``app`` holds of the database: the audit events still
    queued are written first (waiting for a batch the writer thread is
    writing), so that no connection is taken from the engine after it is
    disposed, to be garbage collected open later, in another test, as a
    ResourceWarning (seen once in a PostgreSQL run)."""
    from idp.extensions import db

    if app.extensions["idp"].logout is not None:
        app.extensions["idp"].logout.stop()
    try:
        app.extensions["idp"].audit.flush()
    except Exception:  # noqa: BLE001 - a test may have broken the database on purpose
        pass
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def each_app_context_is_a_unit(app: Flask) -> Flask:
    """Make every application context a test opens around service calls
    (``with provider.app.app_context(): ...``) one unit of work: the test
    is then the outermost caller, and its work is committed when the block
    ends normally and rolled back when it raises, as a view's or a
    command's would be (idp.unit_of_work). Requests are units of their own
    and have nothing left to commit here."""
    from idp import unit_of_work

    @app.teardown_appcontext
    def _end_unit(exc: BaseException | None) -> None:
        if exc is None:
            unit_of_work.commit()
        else:
            unit_of_work.rollback()

    return app


@contextmanager
def running_server(args: list, env: dict, log_path: Path, ready_url: str,
                   cwd: Path | None = None, start_timeout: float = 60.0,
                   ) -> Iterator[subprocess.Popen]:
    """A server process (``idp serve``...) started with ``args``, its output
    in ``log_path``, once ``ready_url`` answers 200; stopped on leaving
    (terminated, killed after 15 s).

    :raises AssertionError: when it exits, or does not answer within
        ``start_timeout`` seconds; the message ends with its log.
    """
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if requests.get(ready_url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{args} did not start: "
                                     + Path(log_path).read_text()[-3000:])
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``(code_verifier, code_challenge)`` pair for S256 (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class TestClient:
    """A registered client as the tests see it."""

    client_id: str
    client_secret: str | None
    redirect_uri: str
    alg: str = "ES256"
    post_logout_redirect_uri: str | None = None

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.client_id, self.client_secret) if self.client_secret else None


@dataclass
class ProviderHandle:
    """A provider serving on ``url`` from a thread of the test process."""

    app: Flask
    server: Any
    url: str

    def stop(self) -> None:

        self.server.shutdown()
        self.server.server_close()
        close_app(self.app)

    @property
    def runtime(self):
        return self.app.extensions["idp"]

    def cli_env(self) -> dict[str, str]:
        """The environment of an ``idp`` command run on this provider's own
        issuer, database, store and secrets, as an operator would run it."""
        from tests.conftest import SECRETS

        settings = self.runtime.settings
        return {"IDP_ISSUER": self.url, "IDP_INSTANCE_PATH": settings["instance_path"],
                "IDP_DATABASE_URL": settings["database_url"] or "",
                "IDP_REDIS_URL": settings["redis_url"] or "",
                "IDP_STORE_PREFIX": settings["store_prefix"],
                **{f"IDP_SECRETS__{k.upper()}": v for k, v in SECRETS.items()}}

    def create_account(self, username: str | None = None, password: str = DEFAULT_PASSWORD,
                       **kwargs) -> tuple[str, str, str]:
        """Create an account; returns ``(username, password, sub)``."""
        from idp.accounts.service import create_account

        username = username or f"user{uuid.uuid4().hex[:10]}"
        with self.app.app_context():
            account = create_account(self.runtime, username, password, **kwargs)
            return account.username, password, account.subject

    def create_client(self, *, public: bool = False, trusted: bool = True,
                      grant_types: list[str] | None = None, alg: str = "ES256",
                      auth_method: str | None = None, jwks: dict | None = None,
                      redirect_uri: str | None = None,
                      post_logout_redirect_uri: str | None = None,
                      subject_type: str = "public", cas: str | None = None,
                      **options) -> TestClient:
        """Register a client with one redirect URI and one post-logout URI;
        ``options`` are other :class:`idp.clients.metadata.ClientMetadata`
        fields. Public subjects by default, so tests can compare ``sub`` with
        the account's. With ``cas`` (a service URL), a CAS service instead."""
        from idp.clients.metadata import ClientMetadata, auth_method_for
        from idp.clients.service import create_client
        from idp.extensions import db

        tag = uuid.uuid4().hex[:8]
        redirect_uri = redirect_uri or f"http://127.0.0.1:9/{tag}/callback"
        logout_uri = post_logout_redirect_uri or f"http://127.0.0.1:9/{tag}/logged-out"
        if cas is not None:
            metadata = ClientMetadata(
                client_name=f"CAS service {tag}", cas_services=[cas], trusted=trusted,
                token_endpoint_auth_method="none", subject_type=subject_type, **options)
        else:
            metadata = ClientMetadata(
                client_name=f"Test client {tag}", redirect_uris=[redirect_uri],
                post_logout_redirect_uris=[logout_uri], trusted=trusted,
                token_endpoint_auth_method=auth_method_for(public, auth_method),
                grant_types=grant_types or ["authorization_code", "refresh_token"],
                id_token_signed_response_alg=alg, jwks=jwks, subject_type=subject_type,
                **options)
        with self.app.app_context():
            client, secret = create_client(self.runtime, metadata)
            db.session.commit()
            client_id = client.client_id
            self.runtime.keys.ensure((alg,))
        return TestClient(client_id, secret, redirect_uri, alg, logout_uri)


def callback_params(response: requests.Response) -> dict[str, str]:
    """Query parameters of the redirect in ``response``."""
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def redeem(base: str, client: TestClient, code: str, verifier: str | None = None,
           **extra) -> requests.Response:
    """POST the code to the token endpoint with client_secret_basic (or as a public client)."""
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uri, **extra}
    if verifier:
        data["code_verifier"] = verifier
    if client.auth is None:
        data.setdefault("client_id", client.client_id)
    return requests.post(f"{base}/token", data=data, auth=client.auth)


def hidden_inputs(html: str) -> dict[str, str]:
    """Hidden form fields of a page, by name."""
    out = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="hidden"' in tag:
            out[name.group(1)] = unescape(value.group(1)) if value else ""
    return out


@dataclass
class Browser:
    """A scripted user agent: follows provider redirects by hand, logs in and
    consents through the real HTML forms, and stops at the client's redirect URI."""

    base: str
    session: requests.Session = field(default_factory=requests.Session)
    pages: list[str] = field(default_factory=list)

    def authorize_url(self, client: TestClient, **params) -> str:
        query = {"response_type": "code", "client_id": client.client_id,
                 "redirect_uri": client.redirect_uri, "scope": "openid profile email",
                 "state": secrets.token_urlsafe(8)}
        query.update({k: v for k, v in params.items() if v is not None})
        return f"{self.base}/authorize?{urlencode(query)}"

    def go(self, url: str, *, username: str | None = None, password: str | None = None,
           consent: str = "approve", max_steps: int = 12) -> requests.Response:
        """Follow redirects from ``url``; fill the login form with the given
        credentials and answer the consent form. Returns the last response,
        which is the redirect to a non-provider URL or a page that needs
        something not given (e.g. a login without credentials)."""
        response = self.session.get(url, allow_redirects=False)
        for _ in range(max_steps):
            self.pages.append(response.url)
            if response.status_code in (301, 302, 303):
                location = urljoin(response.url, response.headers["Location"])
                if not location.startswith(self.base):
                    return response
                response = self.session.get(location, allow_redirects=False)
                continue
            path = urlsplit(response.url).path
            if path == "/login" and response.status_code == 200 and username:
                fields = hidden_inputs(response.text)
                fields.update(username=username, password=password)
                username = None
                response = self.session.post(f"{self.base}/login", data=fields,
                                             allow_redirects=False)
                continue
            if path == "/consent" and response.status_code == 200 and consent:
                fields = hidden_inputs(response.text)
                fields["decision"] = consent
                consent = ""
                response = self.session.post(f"{self.base}/consent", data=fields,
                                             allow_redirects=False)
                continue
            return response
        raise AssertionError("too many steps")

    def login_for_code(self, client: TestClient, username: str, password: str,
                       **params) -> dict[str, str]:
        """Run the authorization flow and return the callback's query parameters."""
        response = self.go(self.authorize_url(client, **params), username=username,
                           password=password)
        assert response.status_code in (302, 303), (response.status_code, response.text[:500])
        assert response.headers["Location"].startswith(client.redirect_uri)
        return callback_params(response)


def offline_sso(provider: ProviderHandle, *, trusted: bool = True,
                ) -> tuple[str, TestClient, Browser]:
    """A new account signed in to ``provider`` in a new browser, and a new
    client it authorized once (scope ``openid offline_access``, consented
    when ``trusted`` is False): ``(username, client, browser)``."""
    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=trusted)
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password, scope="openid offline_access")
    return username, client, browser


def sso_code(browser: Browser, client: TestClient) -> str:
    """A code from a single sign-on hop of ``browser`` to ``client`` (scope
    ``openid offline_access``)."""
    answer = browser.go(browser.authorize_url(client, scope="openid offline_access"))
    return callback_params(answer)["code"]


def hold(monkeypatch, owner: Any, name: str) -> tuple[threading.Event, threading.Event]:
    """Replace ``owner.name`` by a function that sets ``reached`` and waits
    (20 s at most) for ``release`` before it runs the original: a request
    held there lets a test run something else at exactly that point.

    :returns: ``(reached, release)``.
    """
    reached, release = threading.Event(), threading.Event()
    original = getattr(owner, name)

    def held(*args, **kwargs):
        reached.set()
        assert release.wait(20), "the test never released the held call"
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)
    return reached, release


def audit_reads_wait_for_the_writer() -> None:
    """Let every audit-table read a test makes see the events queued so far.

    Events that accompany no change (failures, token issuance) reach the
    table through the deferred writer (idp.audit.writer), a moment after the
    response; a test reading the table at once would race it. Every ORM
    SELECT on the audit table from the main thread (the test's, not a served
    request's) therefore first flushes the writer of the application in
    context, the way an auditor reads after the batches have landed. A read
    inside a unit that has written is left alone: on SQLite that unit holds
    the write lock the writer would wait for.
    """
    from flask import current_app
    from sqlalchemy import event
    from sqlalchemy.orm import ORMExecuteState, Session

    from idp import unit_of_work
    from idp.audit.models import AuditEvent

    table = AuditEvent.__table__

    @event.listens_for(Session, "do_orm_execute")
    def _flush_before_audit_reads(state: ORMExecuteState) -> None:
        if not state.is_select or threading.current_thread() is not threading.main_thread():
            return
        runtime = current_app.extensions.get("idp")
        # The cheap checks first: finding the statement's tables compiles it.
        if (runtime is None or runtime.audit.idle() or unit_of_work.wrote()
                or table not in state.statement.get_final_froms()):
            return
        runtime.audit.flush()


#: Headers that differ between any two answers.
VOLATILE_HEADERS = {"date", "server"}


def wsgi_answer(wsgi, environ: dict) -> tuple[str, dict[str, str], bytes]:
    """Call the WSGI application ``wsgi`` with a copy of ``environ``:
    ``(status line, headers by lower-case name without`` :data:`VOLATILE_HEADERS`
    ``, body)``, to compare two answers."""
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    body = b"".join(wsgi(dict(environ), start_response))
    headers = {name.lower(): value for name, value in seen["headers"]
               if name.lower() not in VOLATILE_HEADERS}
    return seen["status"], headers, body
