"""The RSGI bridge (idp.rsgi_bridge) gives the WSGI application what a WSGI
server would (PEP 3333), from granian's request scope; the slow-client
behaviour is tested against a running ``idp serve`` (test_serve.py)."""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass, field

import pytest

from idp.oidc.lanes import on_protocol_threads
from idp.rsgi_bridge import MAX_BODY_BYTES, WsgiBridge


class Headers(dict):
    """granian's request headers: a mapping that also lists repeated names;
    ``Host`` is added unless ``host=False``."""

    def items(self):
        return self._pairs

    def keys(self):
        return [name for name, _ in self._pairs]

    def __init__(self, pairs, host=True):
        pairs = ([("host", "127.0.0.1:5000")] if host else []) + list(pairs)
        super().__init__(pairs)
        self._pairs = pairs


@dataclass
class Scope:
    headers: Headers
    method: str = "POST"
    path: str = "/caf\u00e9"
    query_string: str = "a=%00&b=2"
    server: str = "127.0.0.1:5000"
    client: str = "[::1]:40000"
    http_version: str = "1.1"
    scheme: str = "http"
    proto: str = "http"


@dataclass
class Protocol:
    chunks: list[bytes]
    answers: list[tuple] = field(default_factory=list)

    async def __call__(self) -> bytes:
        """The body whole, as granian's ``await protocol()`` reads it."""
        return b"".join(self.chunks)

    def response_bytes(self, status, headers, body):
        self.answers.append((status, headers, body))


def _serve(app, scope, protocol, timeout=5.0):
    bridge = WsgiBridge(app, threads=1, request_timeout=timeout)
    bridge.__rsgi_init__(None)
    try:
        asyncio.run(bridge.__rsgi__(scope, protocol))
    finally:
        bridge.__rsgi_del__(None)
    return protocol.answers[0]


def test_the_environ_is_pep_3333s():
    seen = {}

    def app(environ, start_response):
        seen.update(environ, body=environ["wsgi.input"].read())
        write = start_response("201 CREATED", [("X-A", "1")])
        write(b"written ")
        return [b"returned"]

    scope = Scope(Headers([("content-type", "application/x-www-form-urlencoded"),
                           ("content-length", "7"), ("x-forwarded-for", "1.1.1.1"),
                           ("x-forwarded-for", "2.2.2.2")]))
    status, headers, body = _serve(app, scope, Protocol([b"a=1", b"&b=2"]))
    assert (status, headers, body) == (201, [("X-A", "1")], b"written returned")
    assert seen["PATH_INFO"] == "/caf\u00e9".encode().decode("latin-1")
    assert seen["QUERY_STRING"] == "a=%00&b=2" and seen["body"] == b"a=1&b=2"
    assert seen["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert seen["CONTENT_LENGTH"] == "7" and "HTTP_CONTENT_LENGTH" not in seen
    assert seen["HTTP_X_FORWARDED_FOR"] == "1.1.1.1,2.2.2.2"
    assert (seen["REMOTE_ADDR"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == \
        ("::1", "127.0.0.1", "5000")


@pytest.mark.parametrize("chunks,length", [
    # More than the declared length never comes from hyper; the count holds anyway.
    ([b"a" * (MAX_BODY_BYTES + 1)], "10"),
    ([b"a" * 40_000, b"a" * 40_000], "10"),
    ([], str(MAX_BODY_BYTES + 1)),
])
def test_a_body_over_the_limit_is_413_without_the_application(chunks, length):
    def app(environ, start_response):
        raise AssertionError("the application must not run")

    headers = Headers([("content-length", length)] if length else [])
    status, _, _ = _serve(app, Scope(headers), Protocol(chunks))
    assert status == 413


def test_a_body_that_does_not_come_is_408():
    class Stalled(Protocol):
        async def __call__(self) -> bytes:
            await asyncio.sleep(10)
            return b""

    def app(environ, start_response):
        raise AssertionError("the application must not run")

    status, _, _ = _serve(app, Scope(Headers([("content-length", "5")])), Stalled([]),
                          timeout=0.1)
    assert status == 408


def test_a_request_without_content_length_has_no_body_to_wait_for():
    """RFC 9112 §6.3: without Content-Length or Transfer-Encoding (refused
    with 411) a request has no body; the bridge does not read the stream."""
    class Unreadable(Protocol):
        async def __call__(self) -> bytes:
            raise AssertionError("a request without a length was read")

    def app(environ, start_response):
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    status, _, body = _serve(app, Scope(Headers([])), Unreadable([]))
    assert (status, body) == (200, b"")


def test_an_application_failing_outside_flask_is_a_plain_500():
    def app(environ, start_response):
        raise RuntimeError("boom")

    status, _, body = _serve(app, Scope(Headers([])), Protocol([]))
    assert status == 500 and b"boom" not in body


def test_a_header_name_with_an_underscore_is_dropped():
    """Such a name would land on the same WSGI key as its hyphenated twin
    (``X_Forwarded_For`` beside the proxy's ``X-Forwarded-For``), letting a
    client forge the address the per-IP limits count by."""
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    scope = Scope(Headers([("x_forwarded_for", "6.6.6.6"), ("x-forwarded-for", "1.1.1.1")]))
    _serve(app, scope, Protocol([]))
    assert seen["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"


def test_a_body_without_a_length_is_411_without_the_application():
    """granian ends a chunked body quietly when the client stops early, and
    each chunk cost a turn of the event loop (20,000 one-byte chunks took
    1.9 s of a worker's CPU): RFC 9112 §6.3 lets the server require a length."""
    def app(environ, start_response):
        raise AssertionError("the application must not run")

    scope = Scope(Headers([("transfer-encoding", "chunked")]), path="/token")
    status, _, _ = _serve(app, scope, Protocol([b"grant_type=", b"client_credentials"]))
    assert status == 411


def test_a_body_cut_short_is_never_served():
    """The client closed after 5 of 25 announced bytes: granian ended the
    stream quietly and /token issued a token for the cut form (RFC 9112
    §6.3: an incomplete message is not acted on)."""
    ran = []

    def app(environ, start_response):
        ran.append(environ)
        start_response("200 OK", [])
        return [b""]

    protocol = Protocol([b"hello"])
    bridge = WsgiBridge(app, threads=1, request_timeout=5)
    bridge.__rsgi_init__(None)
    try:
        asyncio.run(bridge.__rsgi__(Scope(Headers([("content-length", "25")])), protocol))
    finally:
        bridge.__rsgi_del__(None)
    assert ran == [] and protocol.answers == []


@pytest.mark.parametrize("pairs", [[], [("host", "a.example"), ("host", "b.example")]])
def test_an_http_1_1_request_needs_exactly_one_host(pairs):
    """RFC 9112 §3.2: a request without Host, or with two, is answered 400;
    both reached Flask (two as ``HTTP_HOST="a,b"``)."""
    def app(environ, start_response):
        raise AssertionError("the application must not run")

    status, _, _ = _serve(app, Scope(Headers(pairs, host=False)), Protocol([]))
    assert status == 400


def test_a_raw_non_ascii_query_is_utf_8_read_as_latin_1():
    """Found by the attack on issue 9: the query went to Werkzeug as text,
    so a raw "ü" became one latin-1 byte, not UTF-8, and failed its
    decoding (a 500 on every route; "€" could not be encoded at all)."""
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    _serve(app, Scope(Headers([]), method="GET", query_string="a=\u00fc&b=\u20ac"),
           Protocol([]))
    assert seen["QUERY_STRING"] == "a=\u00fc&b=\u20ac".encode().decode("latin-1")


def test_cookie_fields_are_one_cookie_list():
    """Several Cookie fields (as HTTP/2 sends them) join with "; ", not ","
    (RFC 6265 §4.2.1, RFC 9113 §8.2.3): found by the attack on issue 9, a
    second field hid the session cookie of the first."""
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    _serve(app, Scope(Headers([("cookie", "a=1"), ("cookie", "idp_sso=x")]), method="GET"),
           Protocol([]))
    assert seen["HTTP_COOKIE"] == "a=1; idp_sso=x"


def _pools_of(paths, **options) -> dict[str, str]:
    """The name of the thread that ran a GET of each of ``paths`` on a
    bridge made with ``options``."""
    ran_on = {}

    def app(environ, start_response):
        ran_on[environ["PATH_INFO"]] = threading.current_thread().name
        start_response("200 OK", [])
        return [b""]

    bridge = WsgiBridge(app, threads=1, request_timeout=5, **options)
    bridge.__rsgi_init__(None)
    try:
        for path in paths:
            asyncio.run(bridge.__rsgi__(Scope(Headers([]), method="GET", path=path,
                                              query_string=""), Protocol([])))
    finally:
        bridge.__rsgi_del__(None)
    return ran_on


def test_protocol_paths_run_on_their_own_pool():
    """``server.protocol_threads``: the requests ``protocol`` picks run on
    a pool of their own (a few threads keep writers from waiting behind
    the interpreter lock); every other request on the main pool."""
    ran_on = _pools_of(("/token", "/login", "/token/"), protocol_threads=1,
                       protocol=lambda environ: environ["PATH_INFO"] == "/token")
    assert ran_on["/token"].startswith("idp-protocol")
    assert ran_on["/login"].startswith("idp-request")
    assert ran_on["/token/"].startswith("idp-request")


def test_without_protocol_threads_every_path_runs_on_the_main_pool():
    ran_on = _pools_of(("/token",), protocol_threads=0, protocol=lambda environ: True)
    assert ran_on["/token"].startswith("idp-request")


@pytest.mark.parametrize("path,body,protocol", [
    ("/authorize", b"", True), ("/userinfo", b"", True), ("/introspect", b"token=x", True),
    ("/token", b"grant_type=client_credentials", True),
    ("/token", b"grant_type=authorization_code&code=x", True),
    # A rotation's commit is shared by those waiting with it: the main pool.
    ("/token", b"grant_type=refresh_token&refresh_token=x", False),
    ("/login", b"", False), ("/account", b"", False), ("/revoke", b"token=x", False),
])
def test_which_requests_run_on_the_protocol_threads(path, body, protocol):
    assert on_protocol_threads({"PATH_INFO": path, "wsgi.input": io.BytesIO(body)}) is protocol
