"""The provider as an RSGI application for granian (``idp serve``).

granian's HTTP layer is Rust (hyper): it parses requests and writes answers
outside Python, which took most of a request's time under gunicorn. Its own
WSGI interface runs the application in a thread as soon as the head has
arrived and lets the thread read the body from the socket, so a client that
sends its body a byte at a time holds a thread for as long as it likes
(slowloris); :class:`WsgiBridge` therefore speaks RSGI and keeps the rule
the provider's gunicorn worker had: a thread only ever runs the
application.

- The head is read by hyper, within ``server.request_timeout`` (granian's
  ``header_read_timeout``) and within :data:`MAX_HEAD_BYTES`.
- The body is read in the worker's event loop, whole, before a thread gets
  the request: at most :data:`MAX_BODY_BYTES` (413 beyond, from the
  ``Content-Length`` alone), within ``server.request_timeout`` (408 after),
  exactly ``Content-Length`` bytes (a body cut short is never served), and
  only with a ``Content-Length`` (411 without: :func:`_refusal`).
- The application runs in a pool of ``threads`` threads per worker on a
  WSGI environ with the buffered body (PEP 3333); its answer is collected
  in the thread and handed to hyper, which sends it without a thread
  waiting on the client (slow readers).
- Answers that need no I/O (discovery, a fresh JWKS:
  :meth:`idp.oidc.public_documents.PublicDocuments.answer`) are given in
  the event loop, without the thread hop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: An answer as ``(status code, headers, body)``.
Answer = tuple[int, list[tuple[str, str]], bytes]


def serve_before(answer: Answer | None, downstream: WSGIApp, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI side of a middleware that answers some requests before
    Flask (``idp.oidc.public_documents``, ``idp.oidc.lanes``,
    ``idp.oidc.hop``): ``answer`` when there is one, with Werkzeug's status
    line (``302 FOUND``), else whatever ``downstream`` answers."""
    if answer is None:
        return downstream(environ, start_response)
    status, headers, body = answer
    start_response(f"{status} {HTTPStatus(status).phrase.upper()}", headers)
    return [body]


#: Largest request head, bytes (request line and fields): hyper's read
#: buffer, beyond which it refuses the request (431, RFC 6585 §5).
MAX_HEAD_BYTES = 64 * 1024
#: Largest request body, bytes: the provider's MAX_CONTENT_LENGTH; a longer
#: one is answered 413 (RFC 9110 §15.5.14) without being kept.
MAX_BODY_BYTES = 64 * 1024


class _TooLarge(Exception):
    """The body goes past :data:`MAX_BODY_BYTES`."""


class _Incomplete(Exception):
    """The body ended before its ``Content-Length``."""


def _refusal(scope: Any) -> Answer | None:
    """The answer to a request refused on its head alone, else None.

    - A body without ``Content-Length`` (``Transfer-Encoding``): 411 (RFC
      9112 §6.3 lets a server require the length). granian ends a chunked
      body quietly when the client stops early, so its end cannot be told
      from a cut; and each chunk costs a turn of the event loop. Browsers
      and OAuth clients send forms with a length.
    - An HTTP/1.1 request without ``Host``, or with two: 400 (RFC 9112 §3.2).
    """
    names = [name.lower() for name in scope.headers.keys()]
    if "transfer-encoding" in names:
        return _plain(411, "Length Required")
    hosts = names.count("host")
    if hosts > 1 or (hosts == 0 and scope.http_version == "1.1"):
        return _plain(400, "Bad Request")
    return None


def _plain(status: int, reason: str) -> Answer:
    body = f"{status} {reason}\n".encode()
    return status, [("content-type", "text/plain; charset=utf-8"), ("connection", "close"),
                    ("content-length", str(len(body)))], body


def _host_and_port(address: str) -> tuple[str, str]:
    """``host:port`` (``[v6]:port`` too) as WSGI's ``SERVER_NAME``/``REMOTE_ADDR`` and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port


class WsgiBridge:
    """RSGI application (granian's ``__rsgi__`` protocol) that serves the
    WSGI application ``wsgi_app`` from a thread pool, reading each request
    whole first.

    :param wsgi_app: the WSGI application (the provider's Flask app).
    :param threads: threads per worker that run it.
    :param protocol_threads: threads per worker of a second pool that runs
        the requests ``protocol`` picks (0: no second pool).
    :param protocol: tells from a request's environ (its body read whole)
        whether it runs on the second pool: the requests that never wait
        on anything but the CPU, the store and the database, and gain
        nothing from waiting together (:func:`idp.oidc.lanes.on_protocol_threads`).
        Every thread ready to run takes its turn at the interpreter lock,
        so more threads than cores make a thread that holds a store or
        database write lock wait for its turn, and every writer of every
        worker waits behind it: a few threads serve these requests faster,
        while the many of the first pool wait on the gateway (registries,
        SMS) or on commits they share.
    :param request_timeout: seconds a client has to send the body once the
        head has arrived.
    :param quick: a function answering, from an environ, what needs no I/O
        (or None to let a thread answer); called in the event loop.
    :param on_stop: called once the worker's requests have finished, before
        it exits (granian's workers leave without running ``atexit``): the
        provider writes its queued audit events there.
    """

    def __init__(self, wsgi_app: WSGIApp, *, threads: int, request_timeout: float,
                 protocol_threads: int = 0,
                 protocol: Callable[[dict[str, Any]], bool] | None = None,
                 quick: Callable[[dict[str, Any]], Answer | None] | None = None,
                 on_stop: Callable[[], None] | None = None) -> None:
        self._app = wsgi_app
        self._threads = threads
        self._protocol_threads = protocol_threads
        self._protocol = protocol if protocol_threads else None
        self._timeout = request_timeout
        self._quick = quick
        self._on_stop = on_stop
        self._pool: ThreadPoolExecutor | None = None
        self._protocol_pool: ThreadPoolExecutor | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian: the worker starts (after the fork)."""
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="idp-request")
        if self._protocol is not None:
            self._protocol_pool = ThreadPoolExecutor(self._protocol_threads,
                                                     thread_name_prefix="idp-protocol")

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian: the worker stops; requests in threads finish first."""
        for pool in (self._pool, self._protocol_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        if self._on_stop is not None:
            try:
                self._on_stop()
            except Exception:  # noqa: BLE001 - the worker is leaving; say so, do not hang
                log.exception("the work to do when the worker stops failed")

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        """Serve one HTTP request (websockets are off)."""
        refused = _refusal(scope)
        if refused is not None:
            protocol.response_bytes(*refused)
            return
        try:
            # A request without Content-Length (Transfer-Encoding was refused
            # above) has no body (RFC 9112 §6.3): nothing to wait for.
            if "content-length" in scope.headers:
                # A timeout of its own, not wait_for(): no task per request.
                async with asyncio.timeout(self._timeout):
                    body = await self._read_body(scope, protocol)
            else:
                body = b""
        except _Incomplete:
            # The client closed before the body was whole (RFC 9112 §6.3:
            # incomplete, never to be acted on); nobody is left to answer.
            return
        except _TooLarge:
            protocol.response_bytes(*_plain(413, "Content Too Large"))
            return
        except TimeoutError:
            protocol.response_bytes(*_plain(408, "Request Timeout"))
            return
        except Exception:  # noqa: BLE001 - the client went away or broke the framing
            return
        environ = self._environ(scope, body)
        answer = self._quick(environ) if self._quick is not None else None
        if answer is None:
            pool = (self._protocol_pool if self._protocol is not None and self._protocol(environ)
                    else self._pool)
            answer = await asyncio.get_running_loop().run_in_executor(pool, self._call, environ)
        protocol.response_bytes(*answer)

    @staticmethod
    async def _read_body(scope: Any, protocol: Any) -> bytes:
        length = scope.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise _TooLarge
        # Read whole in one await (granian's ``protocol()``): iterating the
        # chunks cost a turn of the event loop each.
        body = await protocol()
        if len(body) > MAX_BODY_BYTES:
            raise _TooLarge
        # granian raises when the client closes early; a short body is
        # refused all the same.
        if len(body) != int(length or 0):
            raise _Incomplete
        return body

    @staticmethod
    def _environ(scope: Any, body: bytes) -> dict[str, Any]:
        server, server_port = _host_and_port(scope.server)
        client, client_port = _host_and_port(scope.client)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            # PEP 3333: PATH_INFO is the decoded path's bytes read as latin-1.
            # granian hands over text (bytes that are not UTF-8 already as
            # U+FFFD), so that is its UTF-8 read as latin-1.
            "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
            # The same for the query: a raw "ü" in it would otherwise reach
            # Werkzeug as one latin-1 byte, not UTF-8, and fail its decoding.
            "QUERY_STRING": scope.query_string.encode("utf-8", "surrogateescape"
                                                      ).decode("latin-1"),
            "SERVER_NAME": server, "SERVER_PORT": server_port,
            "REMOTE_ADDR": client, "REMOTE_PORT": client_port,
            "SERVER_PROTOCOL": "HTTP/" + scope.http_version,
            "wsgi.version": (1, 0), "wsgi.url_scheme": scope.scheme,
            # The body is read whole, so the input ends where it does
            # (Werkzeug reads no chunked body from an input not so marked).
            "wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        for name, value in scope.headers.items():
            if "_" in name:
                # X_Forwarded_For would become HTTP_X_FORWARDED_FOR beside the
                # proxy's X-Forwarded-For, a way to spoof the client address
                # the limits count by; dropped, as nginx and gunicorn do.
                continue
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            # Repeated fields are one list (RFC 9110 §5.3); the cookie-pairs
            # of several Cookie fields are one list joined by "; " (RFC 6265
            # §4.2.1, as HTTP/2 splits them: RFC 9113 §8.2.3).
            if key in environ:
                value = f"{environ[key]}{'; ' if key == 'HTTP_COOKIE' else ','}{value}"
            environ[key] = value
        return environ

    def _call(self, environ: dict[str, Any]) -> Answer:
        seen: dict[str, Any] = {}
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            seen["status"], seen["headers"] = int(status[:3]), headers
            return written.append

        try:
            result = self._app(environ, start_response)
            try:
                body = b"".join([*written, *result])
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:  # noqa: BLE001 - Flask's error net answers first; this is the last one
            log.exception("the application failed outside its error handlers")
            return _plain(500, "Internal Server Error")
        return seen["status"], seen["headers"], body


def create_bridge() -> WsgiBridge:
    """granian's factory (``idp serve``), run in each worker: the provider
    from its settings (``IDP_*``, config files), served with
    ``server.threads`` threads, ``server.protocol_threads`` threads for the
    endpoints answered before Flask, and ``server.request_timeout``; the
    audit events still queued are written when the worker stops."""
    from idp import create_app
    from idp.oidc.lanes import on_protocol_threads

    app = create_app()
    server = app.extensions["idp"].settings["server"]
    return WsgiBridge(app, threads=server["threads"],
                      protocol_threads=server["protocol_threads"],
                      protocol=on_protocol_threads,
                      request_timeout=float(server["request_timeout"]),
                      quick=app.extensions["idp.public_documents"].answer,
                      on_stop=app.extensions["idp"].audit.flush)
