"""``idp serve``: the provider under granian (:mod:`idp.rsgi_bridge`).

granian parses HTTP and sends answers in Rust; the bridge reads each request
whole in the worker's event loop and gives threads only the application, so
slow clients (a head or body a byte at a time, answers never read) cost a
buffer, not a thread. A reverse proxy in front (README, production) limits
connections per address and drops clients that never read their answers,
which granian (no write timeout) does not.

Why granian and not gunicorn: measured side by side on this machine
(docs/performance.md, issue 9), gunicorn's pure-Python parsing and writing
cost more than the provider's own work on its cheapest endpoints, and its
threads had to be shielded from slow clients by a worker of our own.
"""

from __future__ import annotations

import os

import click

from idp.rsgi_bridge import MAX_HEAD_BYTES

#: granian's limit on the head read timeout, milliseconds.
MAX_HEAD_TIMEOUT_MS = 60_000
#: Connections one worker holds at once (granian's ``backpressure``, which
#: counts connections; its default shares 1,024 among all workers).
CONNECTIONS_PER_WORKER = 1000


def run_granian(host: str, port: int, workers: int, request_timeout: int) -> None:
    """Serve the provider (:func:`idp.rsgi_bridge.create_bridge`, built in
    each worker) on ``host:port``; blocks until SIGINT or SIGTERM.

    :param request_timeout: seconds a client has to send a request's head,
        and then its body.
    :raises click.ClickException: ``request_timeout`` below 1 second.
    """
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.server import Server

    if request_timeout < 1:
        raise click.ClickException("setting server.request_timeout must be at least 1 second")
    Server(
        "idp.rsgi_bridge:create_bridge", factory=True, address=host, port=port,
        interface=Interfaces.RSGI, workers=workers, http=HTTPModes.http1, websockets=False,
        # libuv's loop in C: asyncio's own runs each turn in Python, which
        # under load held a third of a worker's interpreter time.
        loop=Loops.uvloop,
        http1_settings=HTTP1Settings(
            header_read_timeout=min(request_timeout * 1000, MAX_HEAD_TIMEOUT_MS),
            max_buffer_size=MAX_HEAD_BYTES),
        log_access=False,
        backlog=max(1024, CONNECTIONS_PER_WORKER * workers),
        backpressure=CONNECTIONS_PER_WORKER,
        # A worker that dies (a crash in a C extension, the OOM killer) is
        # replaced; granian's default stops the whole server.
        respawn_failed_workers=True,
        # Requests are short; a worker still busy 10 s after SIGTERM is stuck.
        workers_kill_timeout=10,
    ).serve()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=int, help="TCP port.")
@click.option("--workers", type=int, default=None, help="Worker processes (default: config).")
@click.option("--threads", type=int, default=None, help="Threads per worker (default: config).")
def serve(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Run the provider under granian (requests are read whole before a thread runs them)."""
    from idp.cli.group import create_command_app
    from idp.config import ConfigError, load_settings

    if threads is not None:
        # The workers build the app from the settings, environment included.
        os.environ["IDP_SERVER__THREADS"] = str(threads)
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    create_command_app()  # fail here, before the workers start, on bad config; upgrades the schema
    run_granian(host, port, workers or settings["server"]["workers"],
                settings["server"]["request_timeout"])
