"""Adversarial review of issue 7's protocol and HTTP surface: attacks that
broke the change (each test fails on the code under review and states the
right behaviour) and a few that held and had no test yet.

Areas: client authentication's HTTP Basic parsing, the Host header on pages,
pairwise sectors of native apps (loopback and private-use redirect URIs),
the sector_identifier_uri fetch deadline, and ``idp serve``'s slow-client
worker."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
import pytest
import requests

from tests.helpers import Browser, pkce_pair
from tests.serve_support import running_serve

MALFORMED_BASIC = "Client authentication failed: malformed HTTP Basic credentials."


# --- HTTP Basic credentials that are only a scheme ----------------------------

@pytest.mark.parametrize("endpoint", ["/token", "/revoke", "/introspect", "/kiosk/login"])
@pytest.mark.parametrize("authorization", [
    "Basic ",        # kept by the WSGI server the tests (and werkzeug) run on
    "Basic \xa0",    # gunicorn strips spaces, not NBSP (a byte 0xA0 on the wire)
    "basic \x85",    # NEL: whitespace to str.split(), a header byte to HTTP
])
def test_basic_scheme_without_credentials_is_invalid_client(provider, endpoint, authorization):
    """Authlib's ``extract_basic_authorization`` splits the header on
    whitespace and unpacks two values: ``Basic`` followed only by
    whitespace raised ValueError, a 500 at all four endpoints (``idp serve``
    too, with ``Basic \\xa0``). RFC 6749 §5.2: invalid_client, and 401 with a
    challenge since Basic was tried."""
    response = requests.post(f"{provider.url}{endpoint}", data={
        "grant_type": "client_credentials", "token": "x", "card_read": "x.y.z"},
        headers={"Authorization": authorization})
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "invalid_client", "error_description": MALFORMED_BASIC}
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="idp"')


# --- the Host header on pages --------------------------------------------------

@pytest.mark.parametrize("host", ["id..example.test", "id." + "y" * 64 + ".example.test"])
@pytest.mark.parametrize("path", ["/", "/login", "/.well-known/openid-configuration",
                                  "/static/style.css"])
def test_a_host_that_is_no_host_name_is_a_bad_request(provider, host, path):
    """Werkzeug refuses a Host with an empty label or one over 63 characters
    (IDNA) with BadHost, and the error page then fails: no URL adapter for
    ``url_for``. Every page, static files and discovery answered 500 (three
    traces logged per request); a request the server cannot understand is a
    400 (RFC 9110 §15.5.1), on the themed page where it can be drawn."""
    response = requests.get(f"{provider.url}{path}", headers={"Host": host},
                            allow_redirects=False)
    assert response.status_code == 400, response.status_code
    assert "server_error" not in response.text


# --- CORS on the answer that refuses a body parameter in the URL --------------

@pytest.mark.parametrize("endpoint,query,body", [
    ("/token", "code=x", {"grant_type": "authorization_code", "code_verifier": "v" * 43}),
    ("/revoke", "token=x", {}),
])
def test_a_browser_app_can_read_why_its_request_was_refused(provider, endpoint, query, body):
    """docs/clients.md: error answers carry the CORS header of the client
    concerned "so the app can read them". The invalid_request for a
    parameter sent in the URL (RFC 6749 §3.2) was built before the client
    was looked at and carried none: the app saw an opaque CORS failure
    instead of "send 'code' in the form-encoded request body"."""
    origin = "https://spa-url-params.example.test"
    client = provider.create_client(public=True, redirect_uri=f"{origin}/cb",
                                    allowed_origins=[origin])
    response = requests.post(f"{provider.url}{endpoint}?{query}",
                             data={"client_id": client.client_id, **body},
                             headers={"Origin": origin})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers.get("Access-Control-Allow-Origin") == origin


# --- pairwise sectors of native apps ---------------------------------------------

def _claims(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def _native_login(provider, browser: Browser, client, username: str = "",
                  password: str = "") -> dict:
    """Log in through a public client with PKCE; the ID token's claims."""
    verifier, challenge = pkce_pair()
    code = browser.login_for_code(client, username, password, code_challenge=challenge,
                                  code_challenge_method="S256")["code"]
    tokens = requests.post(f"{provider.url}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
        "client_id": client.client_id, "code_verifier": verifier}).json()
    return _claims(tokens["id_token"])


def test_native_apps_on_loopback_are_not_one_sector(provider):
    """docs/clients.md registers every native app with
    ``http://127.0.0.1/callback``; the sector of a pairwise client is the
    host of its redirect URIs, so the tax office's app and the police's app
    were one sector and received the same ``sub`` and ``sid`` for a person:
    the correlation pairwise subjects exist to prevent (OIDC Core §8.1,
    §17.3). A loopback host identifies the user's own machine, not an
    owner: such clients need a sector of their own (their client_id) unless
    a sector_identifier_uri groups them."""
    username, password, _ = provider.create_account()
    tax = provider.create_client(public=True, subject_type="pairwise",
                                 redirect_uri="http://127.0.0.1/tax/callback")
    police = provider.create_client(public=True, subject_type="pairwise",
                                    redirect_uri="http://127.0.0.1/police/callback")
    browser = Browser(provider.url)
    seen_by_tax = _native_login(provider, browser, tax, username, password)
    seen_by_police = _native_login(provider, browser, police)
    assert seen_by_tax["sub"] != seen_by_police["sub"]
    assert seen_by_tax["sid"] != seen_by_police["sid"]


def test_private_use_scheme_authority_is_not_a_web_sector(provider):
    """A private-use URI scheme (RFC 8252 §7.1) is delivered by the operating
    system to the app that claimed the scheme, whatever follows it: in
    ``cn.example.other://rp.example.test/cb`` the "host" names nobody.
    The sector was that host, so the app received the same pairwise ``sub``
    and ``sid`` as the web site at https://rp.example.test; its sector
    is its scheme (the reverse domain name its owner controls)."""
    username, password, _ = provider.create_account()
    site = provider.create_client(subject_type="pairwise",
                                  redirect_uri="https://rp.example.test/cb")
    app = provider.create_client(public=True, subject_type="pairwise",
                                 redirect_uri="cn.example.other://rp.example.test/cb")
    browser = Browser(provider.url)
    params = browser.login_for_code(site, username, password)
    site_tokens = requests.post(f"{provider.url}/token", auth=site.auth, data={
        "grant_type": "authorization_code", "code": params["code"],
        "redirect_uri": site.redirect_uri}).json()
    seen_by_site = _claims(site_tokens["id_token"])
    seen_by_app = _native_login(provider, browser, app)
    assert seen_by_app["sub"] != seen_by_site["sub"]
    assert seen_by_app["sid"] != seen_by_site["sid"]


def test_consent_names_the_app_not_the_authority_of_its_private_use_uri(provider):
    """The consent page said "rp.example.test will receive this
    information" for an app whose answers go to the scheme
    ``cn.example.other``: it must name where the answer really goes."""
    username, password, _ = provider.create_account()
    app = provider.create_client(public=True, trusted=False, subject_type="pairwise",
                                 redirect_uri="cn.example.other://rp.example.test/cb")
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(app, code_challenge=pkce_pair()[1],
                                            code_challenge_method="S256"),
                      username=username, password=password, consent="")
    assert "/consent" in page.url, page.url
    assert '<strong class="host">cn.example.other</strong>' in page.text
    assert "rp.example.test" not in page.text


@pytest.mark.parametrize("uri", [
    "http://0x7f.1:5000/cb", "http://2130706433:5000/cb", "http://127.1:5000/cb",
    "http://017700000001:5000/cb", "http://[::ffff:127.0.0.1]:5000/cb",
    "http://[0:0:0:0:0:0:0:1]:5000/cb", "http://[::1%25lo]:5000/cb",
    "HTTP://127.0.0.1:5000/cb", "http://127.0.0.1.:5000/cb", "http://127.0.0.1:5000\\@x/cb",
])
def test_other_spellings_of_a_loopback_address_get_no_port_rule(provider, uri):
    """Held (no test had these): the any-port rule (RFC 8252 §7.3) applies
    to the registered literal only, never to another spelling of a loopback
    address, which a browser or the app's OS may resolve differently."""
    client = provider.create_client(public=True, redirect_uri="http://127.0.0.1/cb")
    response = requests.get(f"{provider.url}/authorize", params={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": uri,
        "scope": "openid", "state": "S", "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256"}, allow_redirects=False)
    assert response.status_code == 400
    assert "Location" not in response.headers


# --- sector_identifier_uri: the deadline covers the TLS handshake ------------------

@pytest.fixture
def trickling_tls_server(tmp_path):
    """A TLS server for ``sector.test`` behind a relay that passes its bytes
    to the client one every 0.2 s: a handshake of a few kilobytes then takes
    minutes while no single read waits long. Yields the relay's port."""
    from tests.unit.test_sector_fetch import _certificate_files

    _ca, cert_file, key_file = _certificate_files(tmp_path, "sector.test")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    relay = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    opened: list[socket.socket] = []

    def pipe(source: socket.socket, target: socket.socket, delay: float) -> None:
        try:
            while not stop.is_set():
                data = source.recv(1 if delay else 65536)
                if not data:
                    break
                target.sendall(data)
                stop.wait(delay)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept() -> None:
        try:
            client, _ = relay.accept()
        except OSError:
            return
        upstream = socket.create_connection(("127.0.0.1", server.server_port))
        opened.extend((client, upstream))
        threading.Thread(target=pipe, args=(client, upstream, 0), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client, 0.2), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield relay.getsockname()[1]
    stop.set()
    for sock in (relay, *opened):
        sock.close()
    server.shutdown()
    server.server_close()


def test_sector_fetch_deadline_covers_the_tls_handshake(trickling_tls_server, monkeypatch):
    """The watchdog cut a fetch by shutting down the TLS socket, which
    exists only once the handshake is over: a server answering the
    handshake a byte at a time (each read well within READ_TIMEOUT) held an
    ``idp clients create`` for as long as it liked. FETCH_DEADLINE is for
    the whole fetch (idp.clients.sector)."""
    from idp.clients import sector
    from idp.clients.metadata import ClientError, fetch_sector_uris

    monkeypatch.setattr(sector, "FETCH_DEADLINE", 1.0)
    monkeypatch.setattr(sector, "public_address", lambda host, port: "127.0.0.1")
    outcome: list[BaseException | list[str]] = []

    def fetch() -> None:
        try:
            outcome.append(fetch_sector_uris(f"https://sector.test:{trickling_tls_server}/s"))
        except ClientError as exc:
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(4)
    assert not worker.is_alive(), (
        f"the fetch was still running {time.monotonic() - started:.1f} s after a "
        f"{sector.FETCH_DEADLINE} s deadline")
    assert len(outcome) == 1 and isinstance(outcome[0], ClientError)
    assert str(outcome[0]) == sector.UNFETCHABLE


# --- idp serve: requests that took a thread anyway -------------------------------

THREADS = 2


@pytest.fixture(scope="module")
def served(tmp_path_factory, database_url):
    """``idp serve`` with one worker of two threads (so two held connections
    take every thread) and a 3 s request timeout. Yields ``(url, port)``."""
    with running_serve(tmp_path_factory.mktemp("adv-serve"), database_url, workers=1,
                       threads=THREADS, ready_path="/jwks.json",
                       settings={"IDP_SERVER__REQUEST_TIMEOUT": "3"}) as served:
        yield served.url, served.port


FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"
#: Openings of requests that the worker handed to a thread before they were
#: whole; the client then sends the rest a byte at a time.
HELD_OPENINGS = {
    # Whole at its head by request_buffered's rule; the thread then reads
    # the body (gunicorn sends 100 Continue) with no timeout.
    "expect-100-continue": (b"POST /token HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                            + FORM + b"Content-Length: 1000\r\n\r\n"),
    # "0\r\n\r\n" inside the first chunk's data looks like the last chunk.
    "chunk-data-like-the-last-chunk": (b"POST /token HTTP/1.1\r\nHost: x\r\n" + FORM
                                       + b"Transfer-Encoding: chunked\r\n\r\n"
                                       + b"5\r\n0\r\n\r\n\r\n"),
    # 22 digits: not a Content-Length to request_buffered's pattern (so "no
    # body"), 1000 bytes to gunicorn's parser.
    "content-length-with-leading-zeros": (b"POST /token HTTP/1.1\r\nHost: x\r\n" + FORM
                                          + b"Content-Length: 0000000000000000001000\r\n\r\n"),
    # 96 KiB of a head gunicorn accepts (100 fields of up to 8 KiB) is
    # handed over as if whole; the thread waits for the rest of the head.
    "head-over-96-kib": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, b"a" * 8000) for i in range(13)),
}


def _available(url: str) -> bool:
    try:
        return requests.get(f"{url}/jwks.json", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.parametrize("opening", sorted(HELD_OPENINGS))
def test_a_slow_request_of_any_framing_takes_no_thread(served, opening):
    """README: "slow clients cost no thread". Two connections per thread
    count that open a request this way and then send a byte a second kept
    every thread (a reading thread has no timeout), so the provider stopped
    answering; the issue asks it to survive 40 slow connections."""
    url, port = served
    assert _available(url)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2 * THREADS)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            for sock in held:
                try:
                    sock.sendall(b"a")
                except OSError:
                    pass
            stop.wait(1.0)

    try:
        for sock in held:
            sock.sendall(HELD_OPENINGS[opening])
        dripper = threading.Thread(target=trickle, daemon=True)
        dripper.start()
        time.sleep(1.0)
        assert _available(url), f"{opening}: the provider stopped answering"
    finally:
        stop.set()
        for sock in held:
            sock.close()


def test_a_client_that_does_not_read_its_answers_takes_no_thread(served):
    """Pipelined requests whose answers are never read: the thread writing
    them blocks in send() once the socket buffers are full, with no timeout
    (a slow-read attack). Two such connections per thread stopped the
    provider for as long as they stayed open (over 40 s measured, well past
    request_timeout and keep-alive)."""
    url, port = served
    assert _available(url)
    request = b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\n\r\n"
    held = []
    try:
        for _ in range(2 * THREADS):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            held.append(sock)
            sock.settimeout(2)
            try:
                sock.sendall(request * 20_000)
            except TimeoutError:
                pass  # the server stopped reading: it is stuck writing
        # The threads block once the socket buffers are full: a few seconds
        # of answers on loopback.
        watch_until = time.monotonic() + 6
        while time.monotonic() < watch_until:
            assert _available(url), "the provider stopped answering"
            time.sleep(0.5)
    finally:
        for sock in held:
            sock.close()
