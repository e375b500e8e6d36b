"""``idp serve`` survives slow clients (issue 7): a request is read in the
worker's event loop before a thread serves it, so 40 connections sending
their headers a byte at a time take no thread, and an unfinished request
is dropped after ``server.request_timeout``. The server changed from
gunicorn to granian (issue 9); these tests hold the same behaviour of both
(header names are compared without case: granian sends them lower-case)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import requests

from tests.conftest import SECRETS, free_port
from tests.serve_support import running_serve

SLOW_CLIENTS = 40
REQUEST_TIMEOUT = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory, database_url):
    """``idp serve`` in a subprocess: one worker of two threads, so that two
    slow clients would already take every thread of a gthread worker."""
    with running_serve(tmp_path_factory.mktemp("serve"), database_url, workers=1, threads=2,
                       settings={"IDP_SERVER__REQUEST_TIMEOUT": str(REQUEST_TIMEOUT)}) as served:
        yield served.url, served.port


def _discovery_time(url: str) -> float:
    started = time.monotonic()
    response = requests.get(f"{url}/.well-known/openid-configuration", timeout=5)
    assert response.status_code == 200 and response.json()["issuer"] == url
    return time.monotonic() - started


def test_forty_slow_clients_do_not_starve_the_server(served):
    """gthread gave each slow connection a thread, blocked in a header read
    with no timeout: discovery no longer answered."""
    url, port = served
    head = b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\nX-Slow: "
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(SLOW_CLIENTS)]
    stop = threading.Event()

    def trickle():
        sent = 0
        while not stop.is_set():
            for sock in slow:
                try:
                    sock.sendall(head[sent % len(head):sent % len(head) + 1])
                except OSError:
                    pass
            sent += 1
            stop.wait(1.0)

    dripper = threading.Thread(target=trickle, daemon=True)
    dripper.start()
    try:
        time.sleep(1.5)  # every slow client has started its request
        assert max(_discovery_time(url) for _ in range(3)) < 2
        # A body of known length is read before a thread serves it.
        token = requests.post(f"{url}/token", data={"grant_type": "client_credentials"},
                              timeout=5)
        assert token.status_code == 401 and token.json()["error"] == "invalid_client"
    finally:
        stop.set()
        dripper.join(5)
        for sock in slow:
            sock.close()


def test_an_unfinished_request_is_dropped(served):
    _url, port = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(REQUEST_TIMEOUT + 4)
        started = time.monotonic()
        assert sock.recv(1024) == b""
        assert REQUEST_TIMEOUT - 0.5 < time.monotonic() - started < REQUEST_TIMEOUT + 3


def _read_response(answers) -> bytes:
    """The next answer from ``answers`` (the socket's file): its head and
    ``Content-Length`` bytes of body. Answers that arrived in one packet
    stay apart (reading the socket directly lost the second of two)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = answers.readline()
        assert line, "the connection closed"
        head += line
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + answers.read(length)


def test_expect_continue_keep_alive_and_pipelining(served):
    _url, port = served
    body = b"grant_type=client_credentials"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        answers = sock.makefile("rb")
        sock.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        assert answers.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert answers.readline() == b"\r\n"
        sock.sendall(body)
        assert _read_response(answers).startswith(b"HTTP/1.1 401 ")
        # Two requests in one write, on the same kept-alive connection.
        get = b"GET /jwks.json HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(get + get)
        assert _read_response(answers).startswith(b"HTTP/1.1 200 ")
        assert _read_response(answers).startswith(b"HTTP/1.1 200 ")
        answers.close()


def test_request_timeout_below_one_second_is_refused(tmp_path, database_url):
    from click.testing import CliRunner

    from idp.cli import main

    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": database_url or "",
           "IDP_REDIS_URL": os.environ.get("IDP_TEST_REDIS_URL", ""),
           "IDP_SERVER__REQUEST_TIMEOUT": "0",
           **{f"IDP_SECRETS__{k.upper()}": v for k, v in SECRETS.items()}}
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port())], env=env)
    assert result.exit_code == 1
    assert "setting server.request_timeout must be at least 1 second" in result.output


def test_connections_closed_after_their_answer_do_not_hold_the_event_loop(served):
    """gunicorn closes a connection after its answer by draining it for up
    to 2 s (RFC 9112 §9.6), in the event loop: eight clients that asked for
    ``Connection: close`` and then kept their side open stopped every
    connection of the worker for 16 s. The loop now lingers on them without
    waiting."""
    url, port = served
    request = b"GET /jwks.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
    try:
        for sock in held:
            sock.sendall(request)
        time.sleep(0.5)
        assert max(_discovery_time(url) for _ in range(3)) < 1
        # Each got its answer, then the end of the connection.
        for sock in held:
            sock.settimeout(5)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" in answer.lower()
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("opening,status", [
    (b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n", 413),
    # A body without a length is refused at its head (RFC 9112 §6.3).
    (b"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"100000\r\n" + b"a" * 70_000, 411),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 70_000, 431),
])
def test_a_request_over_the_limits_is_refused_without_a_thread(served, opening, status):
    """Such requests went to a thread half read (the rest of a 1 GB body,
    of an endless head, then came a byte at a time); the event loop answers
    them itself and closes the connection."""
    _url, port = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        try:
            sock.sendall(opening)
        except ConnectionResetError:
            pass  # refused before it was all sent
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:100]
    assert b"\r\nconnection: close\r\n" in answer.lower()


def test_static_files_are_sent_whole(served):
    """Static files are sent like any other answer, without a thread
    waiting on the client (gunicorn's sendfile path once needed care)."""
    from idp.config import theme_folder

    url, _port = served
    expected = (theme_folder("default") / "static" / "style.css").read_bytes()
    with requests.Session() as session:  # two requests on one kept-alive connection
        for _ in range(2):
            response = session.get(f"{url}/static/style.css", timeout=5)
            assert response.status_code == 200 and response.content == expected


def test_a_worker_that_dies_is_replaced(tmp_path, database_url):
    """granian stopped the whole server when one worker died (a crash in a C
    extension, the OOM killer): the other worker was shut down too and
    nothing answered. A dead worker is replaced and the others serve on."""
    import signal

    instance = tmp_path / "respawn"
    instance.mkdir()
    with running_serve(instance, database_url, workers=2, threads=2) as served:
        before = served.workers()
        assert len(before) == 2
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = served.workers()
            if victim not in now and len(now) == 2:
                break
            time.sleep(0.2)
        assert victim not in served.workers() and len(served.workers()) == 2
        assert served.proc.poll() is None
        assert _discovery_time(served.url) < 5


def test_workers_run_their_event_loop_on_uvloop(monkeypatch):
    """The workers' event loop is libuv's (uvloop), not asyncio's own,
    whose turns ran in Python (a third of a loaded worker's interpreter
    time, issue 9); granian's default picks it only when installed."""
    from granian import server
    from granian.constants import Loops

    from idp.cli.serve import run_granian

    made: list[dict] = []

    class Recorded:
        def __init__(self, target, **options) -> None:
            made.append(options)

        def serve(self) -> None:
            pass

    monkeypatch.setattr(server, "Server", Recorded)
    run_granian("127.0.0.1", free_port(), 1, REQUEST_TIMEOUT)
    assert [options["loop"] for options in made] == [Loops.uvloop]
