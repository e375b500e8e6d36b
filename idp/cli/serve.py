"""Running the provider under gunicorn, with a worker that slow clients
cannot starve.

gunicorn's gthread worker hands a connection to a thread as soon as its
first byte arrives (``ThreadWorker.handle``: ``wait_for_data``, then a
blocking ``next(conn.parser)`` with no timeout), so a client that sends
its request head one byte every few seconds holds a thread for as long as
it likes; ``threads`` such clients per worker stop the provider
(slowloris). :class:`BufferingThreadWorker` reads each request -- its head
and a body of known length up to :data:`MAX_BUFFERED_BYTES` -- in the
worker's event loop, without a thread, and gives the connection to a thread
only once the request is complete; a request not complete within
``server.request_timeout`` seconds is dropped. A waiting connection then
costs a buffer, not a thread, up to gunicorn's ``worker_connections`` per
worker. A reverse proxy in front (README, production) still limits
connections per address and buffers bodies.
"""

from __future__ import annotations

import re
import selectors
import time
from collections import deque
from functools import partial

import click
from gunicorn import http
from gunicorn.app.base import BaseApplication
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import ThreadWorker

#: Most bytes of one request read in the event loop: a head (gunicorn's
#: limits allow a few KiB in practice) and a body up to the provider's
#: 64 KiB MAX_CONTENT_LENGTH. A client that sends more without finishing is
#: not slow; it is handed to a thread, where the usual limits apply.
MAX_BUFFERED_BYTES = 96 * 1024
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*(\d{1,18})[ \t]*(?:\r|$)")


def request_buffered(data: bytes) -> bool:
    """Whether ``data`` holds a whole HTTP/1.x request (RFC 9112 §2, §6):
    a head ending in an empty line and, with ``Content-Length``, that many
    body bytes; with chunked coding, up to the last chunk. A request that
    asks ``Expect: 100-continue`` is whole at its head (the client waits for
    the interim answer before sending the body), and so is anything of
    :data:`MAX_BUFFERED_BYTES` or more. Only *when* to hand the connection
    to a thread depends on this; gunicorn's parser still reads the request.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return len(data) >= MAX_BUFFERED_BYTES
    if len(data) >= MAX_BUFFERED_BYTES:
        return True
    head = data[:end].lower()
    if b"\nexpect:" in head and b"100-continue" in head:
        return True
    if b"\ntransfer-encoding:" in head:
        return data.find(b"0\r\n\r\n", end + 4) >= 0
    length = _CONTENT_LENGTH.search(head)
    return length is None or len(data) - end - 4 >= int(length.group(1))


class BufferingThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, reading each request in its event loop
    before a thread serves it (see the module docstring).

    TLS and HTTP/2 connections, which the event loop cannot read as plain
    bytes, keep the gthread behaviour.

    :cvar request_timeout: seconds a connection has to send a whole request
        once it has started one (a new connection: from its accept), set
        from ``server.request_timeout`` by :func:`run_gunicorn`.
    """

    request_timeout: float = 10.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: Connections whose request is being read, oldest (first to expire) first.
        self.reading: deque = deque()

    def _reads_in_loop(self, conn) -> bool:
        return (not self.cfg.is_ssl and not conn.is_http2
                and getattr(self.cfg, "protocol", "http") == "http"
                and not negotiation.prior_knowledge_allowed(self.cfg, conn.client))

    def enqueue_req(self, conn) -> None:
        """Read the connection's next request in the event loop first; every
        path to a thread (a new connection, a kept-alive one, bytes read
        ahead) comes through here."""
        if not self._reads_in_loop(conn):
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        conn.request_bytes = bytearray(
            conn.parser.unreader.take_buffered() if conn.parser is not None else b"")
        # Most requests arrive in one packet, usually there already: served
        # without another turn of the loop.
        if not request_buffered(conn.request_bytes) and not self._receive(conn):
            self._drop(conn)
            return
        if request_buffered(conn.request_bytes):
            self._serve(conn)
            return
        conn.read_deadline = time.monotonic() + self.request_timeout
        self.reading.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    @staticmethod
    def _receive(conn) -> bool:
        """Add what the socket holds to the request; False once the client
        has closed the connection (or it failed)."""
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        conn.request_bytes += data
        return bool(data)

    def _on_readable(self, conn, _sock) -> None:
        if not self._receive(conn):
            self._stop_reading(conn)
            self._drop(conn)
        elif request_buffered(conn.request_bytes):
            self._stop_reading(conn)
            self._serve(conn)

    def _stop_reading(self, conn) -> None:
        self.reading.remove(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, conn) -> None:
        self.nr_conns -= 1
        conn.close()

    def _serve(self, conn) -> None:
        """Give the connection, its request read, to a thread."""
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(bytes(conn.request_bytes))
        conn.request_bytes = bytearray()
        conn.data_ready = True
        super().enqueue_req(conn)

    def murder_pending(self) -> None:
        """gthread's sweep of waiting connections, plus the requests that
        were not complete within :attr:`request_timeout`."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading and self.reading[0].read_deadline <= now:
            conn = self.reading[0]
            self._stop_reading(conn)
            self._drop(conn)


class _Gunicorn(BaseApplication):
    def __init__(self, target: str, options: dict) -> None:
        self._target = target
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        from gunicorn.util import import_app

        return import_app(self._target)


def run_gunicorn(target: str, host: str, port: int, workers: int, threads: int,
                 request_timeout: int = 10) -> None:
    """Serve WSGI ``target`` (``module:attr``) on ``host:port`` with
    :class:`BufferingThreadWorker` workers; blocks.

    :param request_timeout: seconds a client has to send a whole request.
    :raises click.ClickException: ``request_timeout`` below 1 second.
    """
    if request_timeout < 1:
        raise click.ClickException("setting server.request_timeout must be at least 1 second")
    BufferingThreadWorker.request_timeout = float(request_timeout)
    _Gunicorn(target, {
        "bind": f"{host}:{port}", "workers": workers, "threads": threads,
        "worker_class": "idp.cli.serve.BufferingThreadWorker", "accesslog": None,
        "timeout": 30, "keepalive": 5,
        # Requests are short; a worker still busy 10 s after SIGTERM is stuck.
        "graceful_timeout": 10,
        # gunicorn 27's control socket lives at one path per user ($HOME/.gunicorn),
        # so two instances would take it from each other; the provider needs none.
        "control_socket_disable": True,
    }).run()
