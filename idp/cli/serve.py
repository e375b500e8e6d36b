"""``idp serve``: the provider under gunicorn, with a worker that slow
clients cannot starve.

gunicorn's gthread worker gives a connection to a thread once its first
byte arrives, and the thread then reads the request and writes the answer
with blocking calls and no timeout: a client that sends its request a byte
at a time, or never reads its answers, holds a thread for as long as it
likes, and ``threads`` such clients per worker stop the provider
(slowloris, slow read). In :class:`BufferingThreadWorker` the worker's
event loop does all the waiting on clients, so a thread only ever runs the
application:

- the loop reads each request whole -- its head, ``100 Continue`` when the
  client asks for it, and the body, whose end it finds as gunicorn's parser
  will (:class:`RequestReader`: ``Content-Length`` digits, chunk sizes) --
  and only then gives the connection to a thread, whose parser reads those
  buffered bytes and never the socket (:class:`_BufferedRequests`);
- the thread's answer goes to the socket without waiting
  (:class:`_Outbox`); what the client has not taken yet is sent by the loop,
  and the connection's next request is read only once it has all gone;
- a request head over :data:`MAX_HEAD_BYTES` is answered 431 and a body
  over :data:`MAX_BODY_BYTES` 413 by the loop; a request not read whole, or
  an answer not taken, within ``server.request_timeout`` seconds is dropped;
  a connection closed after its answer lingers in the loop, not a thread.

A waiting connection costs a buffer, not a thread, up to gunicorn's
``worker_connections`` per worker. A reverse proxy in front (README,
production) still limits connections per address and buffers bodies.

Why not another server: gunicorn's async workers (gevent) also take slow
clients without threads, but need monkey-patching of the database and Redis
drivers and run every argon2 verification (about 28 ms of CPU) inside the
event loop of all the worker's connections; waitress buffers like this
worker but serves from one process. gunicorn's own limits
(``limit_request_line``, ``limit_request_fields``,
``limit_request_field_size``) still apply in the thread; they bound a head
gunicorn accepts, not how long a client may take to send it.
"""

from __future__ import annotations

import re
import selectors
import socket
import time
from functools import partial

import click
from gunicorn import http
from gunicorn.app.base import BaseApplication
from gunicorn.http.errors import NoMoreData
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import ThreadWorker

#: Largest request head read in the event loop, bytes (request line and
#: fields); a longer one is answered 431 (RFC 6585 §5).
MAX_HEAD_BYTES = 64 * 1024
#: Largest request body read in the event loop, bytes as sent (chunk framing
#: included): the provider's MAX_CONTENT_LENGTH. A longer one is answered 413
#: (RFC 9110 §15.5.14) without being read.
MAX_BODY_BYTES = 64 * 1024
#: Bytes of an answer a thread leaves to the event loop when the client is
#: not taking them; beyond that the thread waits (up to ``request_timeout``
#: for each step of progress). The provider's answers are far smaller.
MAX_UNSENT_BYTES = 1024 * 1024
#: Seconds a connection closed after its answer is drained before it is
#: closed for good, so that the client gets the answer and not a reset
#: (RFC 9112 §9.6; gunicorn's ``close_graceful`` does it in a thread).
LINGER_SECONDS = 2.0
#: Most bytes drained from a lingering connection.
LINGER_MAX_BYTES = 64 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BARE_LF = re.compile(rb"(?<!\r)\n")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class RequestRefusedError(Exception):
    """A request the event loop answers itself, without a thread.

    :ivar status: the HTTP status code.
    :ivar reason: its reason phrase.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason

    def response(self) -> bytes:
        """The answer, closing the connection."""
        body = f"{self.status} {self.reason}\n".encode()
        return (f"HTTP/1.1 {self.status} {self.reason}\r\nConnection: close\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class RequestReader:
    """Where the next HTTP/1.1 request ends in the bytes a connection has
    sent so far (RFC 9112 §2.2, §6.3, §7.1), found as they arrive.

    The end is found as gunicorn's parser will find it: the head ends with
    an empty line (one CRLF before the request line is ignored); the body
    is ``Content-Length`` bytes (ASCII digits, leading zeros allowed), or
    chunks up to the last one and its trailer section when the last
    transfer coding is ``chunked``; otherwise there is none. A request whose
    framing gunicorn refuses before reading a body (a bare LF, a folded
    line, two lengths, a length with a transfer coding, a coding other than
    ``chunked`` last, a malformed chunk, an expectation other than
    ``100-continue``) ends where that is seen: the parser answers it at once
    (400, 417 or 501) without reading more.

    :ivar data: the bytes received, possibly beyond the request's end
        (pipelined requests).
    :ivar end: the offset just past the request in :attr:`data` once it is
        whole, else None.
    :ivar expects_continue: the head asks for ``100 Continue`` (RFC 9110
        §10.1.1, not in HTTP/1.0) before the body is sent.
    """

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray()
        self.end: int | None = None
        self.expects_continue = False
        self._scanned = 0
        self._head_end: int | None = None
        self._length: int | None = None
        #: Offset of the next chunk-size line, and of the trailer section.
        self._position = 0
        self._trailers: int | None = None
        if data:
            self.feed(data)

    def feed(self, data: bytes) -> int | None:
        """Add received bytes.

        :returns: :attr:`end`.
        :raises RequestRefusedError: a head over :data:`MAX_HEAD_BYTES` (431)
            or a body over :data:`MAX_BODY_BYTES` (413).
        """
        self.data += data
        if self.end is None and self._head_end is None:
            self._read_head()
        if self.end is None and self._head_end is not None:
            if self._length is not None:
                if len(self.data) - self._head_end >= self._length:
                    self.end = self._head_end + self._length
            else:
                self._read_chunks()
        return self.end

    def _read_head(self) -> None:
        data = self.data
        if data[:1] == b"\r" and len(data) < 2:
            return
        start = 2 if data[:2] == b"\r\n" else 0
        end = data.find(b"\r\n\r\n", max(start, self._scanned - 3))
        if _BARE_LF.search(data, max(start, self._scanned - 1),
                           end + 2 if end >= 0 else len(data)):
            self.end = len(data)
            return
        if end < 0:
            self._scanned = len(data)
            if len(data) - start > MAX_HEAD_BYTES:
                raise RequestRefusedError(431, "Request Header Fields Too Large")
            return
        if end - start > MAX_HEAD_BYTES:
            raise RequestRefusedError(431, "Request Header Fields Too Large")
        self._head_end = self._position = self._scanned = end + 4
        self._read_framing(bytes(data[start:end]).split(b"\r\n"))

    def _read_framing(self, lines: list[bytes]) -> None:
        http10 = lines[0].endswith(b" HTTP/1.0")
        lengths: list[bytes] = []
        codings: list[bytes] = []
        expect: bytes | None = None
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                self.end = self._head_end
                return
            name, _, value = line.partition(b":")
            name = name.rstrip(b" \t").lower()
            value = value.strip(b" \t")
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings += [coding.strip(b" \t").lower() for coding in value.split(b",")]
            elif name == b"expect":
                expect = value.lower()
        if expect not in (None, b"100-continue"):
            self.end = self._head_end
        elif codings:
            if lengths or http10 or codings[-1] != b"chunked":
                self.end = self._head_end
        elif lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                self.end = self._head_end
                return
            digits = lengths[0].lstrip(b"0")
            if len(digits) > 9 or int(digits or b"0") > MAX_BODY_BYTES:
                raise RequestRefusedError(413, "Content Too Large")
            self._length = int(digits or b"0")
        else:
            self._length = 0
        self.expects_continue = expect == b"100-continue" and not http10

    def _within_limit(self, offset: int) -> None:
        if offset - self._head_end > MAX_BODY_BYTES:
            raise RequestRefusedError(413, "Content Too Large")

    def _read_chunks(self) -> None:
        data = self.data
        while self._trailers is None:
            line_end = data.find(b"\r\n", max(self._position, self._scanned - 1))
            if line_end < 0:
                self._scanned = len(data)
                self._within_limit(len(data))
                return
            size_text, extension, _ = bytes(data[self._position:line_end]).partition(b";")
            if extension:
                size_text = size_text.rstrip(b" \t")
            if not _HEX.fullmatch(size_text):
                self.end = len(data)
                return
            size = int(size_text, 16)
            if size == 0:
                self._trailers = self._scanned = line_end + 2
                break
            data_end = line_end + 2 + size
            self._within_limit(data_end + 2)
            if len(data) < data_end + 2:
                self._scanned = line_end
                return
            if data[data_end:data_end + 2] != b"\r\n":
                self.end = len(data)
                return
            self._position = self._scanned = data_end + 2
        self._read_trailers(self._trailers)

    def _read_trailers(self, start: int) -> None:
        data = self.data
        if len(data) < start + 2:
            return
        if data[start:start + 2] == b"\r\n":
            self.end = start + 2
            return
        end = data.find(b"\r\n\r\n", max(start, self._scanned - 3))
        if end < 0:
            self._scanned = len(data)
            self._within_limit(len(data))
            return
        self._within_limit(end + 4)
        self.end = end + 4


class _BufferedRequests:
    """The source of a thread's request parser: the event loop hands it whole
    requests (``unread`` into the parser), so it never reads the socket. A
    read past them -- only if gunicorn's parser and :class:`RequestReader`
    disagreed on an end -- fails as if the client had gone, and the
    connection is closed, rather than the thread waiting on the client or
    taking the rest of a body for a new request."""

    def __iter__(self) -> _BufferedRequests:
        return self

    def __next__(self) -> bytes:
        raise NoMoreData(b"")


class _Outbox:
    """The client socket as a thread writes its answer to it: every send is
    made without waiting (``MSG_DONTWAIT``) and what the client has not
    taken is kept for the event loop to send. Anything else is the socket's.

    :param sock: the connection's socket.
    :param timeout: seconds the thread waits for the client to take more,
        once :data:`MAX_UNSENT_BYTES` are waiting.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        #: What the client has not taken yet, for the event loop.
        self.unsent = bytearray()

    def __getattr__(self, name: str):
        return getattr(self.sock, name)

    def _send_now(self, data) -> int:
        try:
            return self.sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0

    def sendall(self, data) -> None:
        """Send ``data`` or keep it; with more than :data:`MAX_UNSENT_BYTES`
        kept, wait until the client takes some.

        :raises TimeoutError: the client took nothing for ``timeout`` seconds.
        :raises OSError: the connection failed.
        """
        data = memoryview(data)
        if not self.unsent:
            data = data[self._send_now(data):]
        self.unsent += data
        while len(self.unsent) > MAX_UNSENT_BYTES:
            with selectors.DefaultSelector() as selector:
                selector.register(self.sock, selectors.EVENT_WRITE)
                if not selector.select(self.timeout):
                    raise TimeoutError("the client does not read its answer")
            del self.unsent[:self._send_now(self.unsent)]

    def send(self, data) -> int:
        """Like :meth:`sendall`: everything is taken."""
        self.sendall(data)
        return len(data)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """Send ``count`` bytes of ``file`` from ``offset`` (or the rest), as
        :meth:`sendall` does; returns the bytes taken."""
        file.seek(offset)
        taken = 0
        while count is None or taken < count:
            chunk = file.read(65536 if count is None else min(65536, count - taken))
            if not chunk:
                break
            self.sendall(chunk)
            taken += len(chunk)
        return taken


class BufferingThreadWorker(ThreadWorker):
    """gunicorn's gthread worker whose event loop does all the waiting on
    clients: it reads each request whole before a thread serves it, and
    sends what the client has not yet taken of the answer (see the module
    docstring).

    TLS and HTTP/2 connections, which the event loop cannot read as plain
    bytes, keep the gthread behaviour.

    :cvar request_timeout: seconds a connection has to send a whole request
        once it has started one (a new connection: from its accept), and
        for each step of taking its answer; set from
        ``server.request_timeout`` by :func:`run_gunicorn`.
    """

    request_timeout: float = 10.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: Connections the event loop is reading, writing or closing, with
        #: the time (monotonic) by which it must be done.
        self.waiting: dict = {}

    def _reads_in_loop(self, conn) -> bool:
        return (not self.cfg.is_ssl and not conn.is_http2
                and getattr(self.cfg, "protocol", "http") == "http"
                and not negotiation.prior_knowledge_allowed(self.cfg, conn.client)
                and not negotiation.upgrade_allowed(self.cfg, conn.client))

    def _watch(self, conn, events: int, callback, deadline: float) -> None:
        """Wait in the event loop for ``conn`` to be ready for ``events``,
        until ``deadline`` (monotonic) at the latest (:meth:`murder_pending`)."""
        self.waiting[conn] = deadline
        self.poller.register(conn.sock, events, partial(callback, conn))

    def _unwatch(self, conn) -> None:
        del self.waiting[conn]
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, conn) -> None:
        self.nr_conns -= 1
        conn.close()

    # --- reading a request -------------------------------------------------------

    def enqueue_req(self, conn) -> None:
        """Read the connection's next request in the event loop first; every
        path to a thread (a new connection, a kept-alive one, bytes read
        ahead) comes through here."""
        if not self._reads_in_loop(conn):
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        conn.reader = RequestReader()
        conn.continued = False
        conn.request_deadline = time.monotonic() + self.request_timeout
        ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        # Most requests arrive in one packet, usually there already: served
        # without another turn of the loop.
        if self._take(conn, ahead) and self._receive(conn):
            self._watch(conn, selectors.EVENT_READ, self._on_readable, conn.request_deadline)

    def _on_readable(self, conn, _sock) -> None:
        self._unwatch(conn)
        if self._receive(conn):
            self._watch(conn, selectors.EVENT_READ, self._on_readable, conn.request_deadline)

    def _receive(self, conn) -> bool:
        """Read what the socket holds into the request (:meth:`_take`); True
        while more of it is wanted."""
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return False
        return self._take(conn, data)

    def _take(self, conn, data: bytes) -> bool:
        """Add ``data`` to the request and act on it: serve it once whole,
        answer ``100 Continue`` once asked, refuse it past a limit. True
        while more of it is wanted."""
        try:
            whole = conn.reader.feed(data) is not None
        except RequestRefusedError as refused:
            self._answer(conn, refused.response(), None)
            return False
        if whole:
            self._serve(conn)
            return False
        if conn.reader.expects_continue and not conn.continued:
            conn.continued = True
            try:
                sent = conn.sock.send(_CONTINUE)
            except OSError:
                sent = 0
            if sent != len(_CONTINUE):
                # The client has not read its earlier answers: it is gone
                # or reads nothing.
                self._drop(conn)
                return False
        return True

    def _serve(self, conn) -> None:
        """Give the connection, its request read, to a thread."""
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, _BufferedRequests(), conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(bytes(conn.reader.data))
        conn.reader = None
        conn.data_ready = True
        conn.sock = _Outbox(conn.sock, self.request_timeout)
        super().enqueue_req(conn)

    def handle_request(self, req, conn):
        """gunicorn's, without its own ``100 Continue``: the event loop sent
        it before reading the body (or the body came with the head, when
        none is needed, RFC 9110 §10.1.1)."""
        if isinstance(conn.sock, _Outbox):
            req._expected_100_continue = False
        return super().handle_request(req, conn)

    # --- after the answer ----------------------------------------------------------

    def finish_request(self, conn, fs) -> None:
        """Back from the thread: send what the client has not taken of the
        answer, then keep the connection for its next request, or close it."""
        outbox = conn.sock
        if not isinstance(outbox, _Outbox):
            super().finish_request(conn, fs)
            return
        conn.sock = outbox.sock
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:  # noqa: BLE001 -- gunicorn's handle() has logged it
            self._drop(conn)
            return
        self._answer(conn, outbox.unsent, fs if keep else None)

    def _answer(self, conn, data: bytes, fs) -> None:
        """Send ``data`` from the event loop; then hand the connection back
        to gunicorn's keep-alive handling (``fs``, the thread's result), or
        close it (``fs`` None)."""
        conn.sock.setblocking(False)
        conn.unsent = bytearray(data)
        conn.after_answer = fs
        self._flush(conn)

    def _flush(self, conn) -> None:
        try:
            while conn.unsent:
                sent = conn.sock.send(conn.unsent)
                del conn.unsent[:sent]
        except (BlockingIOError, InterruptedError):
            self._watch(conn, selectors.EVENT_WRITE, self._on_writable,
                        time.monotonic() + self.request_timeout)
            return
        except OSError:
            self._drop(conn)
            return
        if conn.after_answer is not None:
            super().finish_request(conn, conn.after_answer)
        else:
            self._linger(conn)

    def _on_writable(self, conn, _sock) -> None:
        self._unwatch(conn)
        self._flush(conn)

    def _linger(self, conn) -> None:
        """Close after the answer (RFC 9112 §9.6): end the sending side, then
        drain what the client still sends until it closes too, at most
        :data:`LINGER_SECONDS`, so it reads the answer instead of a reset."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(conn)
            return
        conn.drained = 0
        self._watch(conn, selectors.EVENT_READ, self._on_lingering,
                    time.monotonic() + LINGER_SECONDS)

    def _on_lingering(self, conn, _sock) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained >= LINGER_MAX_BYTES:
            self._unwatch(conn)
            self._drop(conn)

    def murder_pending(self) -> None:
        """gthread's sweep of waiting connections, plus the connections the
        event loop has waited on past their time: a request not whole
        within :attr:`request_timeout`, an answer not taken, a close not
        acknowledged."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, deadline in self.waiting.items() if deadline <= now]:
            self._unwatch(conn)
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


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=int, help="TCP port.")
@click.option("--workers", type=int, default=None, help="Worker processes (default: config).")
@click.option("--threads", type=int, default=None, help="Threads per worker (default: config).")
def serve(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Run the provider under gunicorn (threaded workers that read each request first)."""
    from idp.cli.group import create_command_app
    from idp.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    create_command_app()  # fail here, before forking, on bad config; also upgrades the schema
    run_gunicorn("idp:create_app()", host, port, workers or settings["server"]["workers"],
                 threads or settings["server"]["threads"],
                 request_timeout=settings["server"]["request_timeout"])
