#!/usr/bin/env python3
"""The floor of the stack: what the HTTP server, the RSGI bridge and Flask
cost before the provider does any work of its own.

Serves, one after the other, on 127.0.0.1 with ``idp serve``'s server
settings (granian, ``--workers`` processes, ``--threads`` threads each,
through :class:`idp.rsgi_bridge.WsgiBridge`):

- ``bare-flask``: a Flask application with one route answering a small JSON
  object, nothing else;
- ``bare-wsgi``: a WSGI function answering the same object without Flask,
  the floor of the provider's lanes (``idp.oidc.lanes``, ``idp.oidc.hop``),
  which answer before Flask in the bridge's threads;
- ``wsgi-es256``: the same function signing one ES256 JWT with joserfc per
  request (an access token's claims): the floor of a token endpoint;
- ``wsgi-rotation``, and ``wsgi-rotation-pg`` with ``--pg URL``: the same
  function doing what any durable refresh-token rotation must, one
  transaction per request as the stack gives it: the token's row found by
  its hash, marked used by a conditional UPDATE, its successor INSERTed,
  COMMIT (SQLAlchemy Core statements run on each thread's kept DBAPI
  connection, as the provider's rotation runs them, ``idp.db.direct``;
  the provider's engine settings: WAL and its writer queue on SQLite,
  pre-ping on PostgreSQL), then two ES256 signatures (access and ID
  token): the floor of the refresh row;
- ``wsgi-hop``, and ``wsgi-hop-redis`` with ``--redis URL``: the same
  function doing what any SSO hop must, with the provider's own store
  (embedded, or Redis): the session and the clients' generation read in one
  call, a new code stored with its per-session count in one call (the
  store's ``put_many_counted``), and a 302 to the redirect URI with the
  code: the floor of the SSO hop row;
- ``provider-floor``: the provider itself (``idp serve`` on a fresh
  embedded instance) answering ``GET /userinfo`` without a token: every
  request hook, no token work (a 401 with its JSON body);

and loads each with ``wrk`` (``--connections``, ``--duration``). Prints
requests per second and the wrk latency percentiles. Needs ``wrk``.

Example::

    python bench/floor.py --duration 5 --threads 8 --redis redis://127.0.0.1:6379/14
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path


def _bridged(app):
    """``app`` behind the provider's bridge, with ``FLOOR_THREADS`` threads."""
    from idp.rsgi_bridge import WsgiBridge

    return WsgiBridge(app, threads=int(os.environ["FLOOR_THREADS"]), request_timeout=10.0)


def _token_answer(start_response, body: bytes) -> list[bytes]:
    """A token endpoint's 200 answer (RFC 6749 §5.1) of the JSON ``body``."""
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Cache-Control", "no-store"),
                              ("Content-Length", str(len(body)))])
    return [body]


def bare_flask():
    """granian factory: a bare Flask app behind the provider's bridge."""
    from flask import Flask, jsonify

    app = Flask("bare")

    @app.get("/userinfo")
    def userinfo():
        return jsonify({"error": "invalid_token"}), 401

    return _bridged(app)


def bare_wsgi():
    """granian factory: a WSGI function behind the provider's bridge."""
    body = b'{"error":"invalid_token"}'

    def app(environ, start_response):
        start_response("401 UNAUTHORIZED", [("Content-Type", "application/json"),
                                            ("Content-Length", str(len(body)))])
        return [body]

    return _bridged(app)


def wsgi_es256():
    """granian factory: a WSGI function signing one ES256 JWT a request."""
    import json
    import secrets

    from joserfc import jwt
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", private=True)

    def app(environ, start_response):
        now = int(time.time())
        token = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, {
            "iss": "http://127.0.0.1", "sub": "floor-client", "aud": "floor-client",
            "client_id": "floor-client", "scope": "api", "iat": now, "exp": now + 300,
            "jti": secrets.token_urlsafe(16)}, key)
        body = json.dumps({"access_token": token, "token_type": "Bearer",
                           "expires_in": 300, "scope": "api"}).encode()
        return _token_answer(start_response, body)

    return _bridged(app)


def _rotation_table():
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table

    return Table("floor_tokens", MetaData(), Column("id", Integer, primary_key=True),
                 Column("token_hash", String(64), unique=True, nullable=False),
                 Column("used_at", DateTime), Column("created_at", DateTime))


def _rotation_schema(url: str, create: bool) -> None:
    """Create (or drop) the rotation floor's table in ``url``."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    table = _rotation_table()
    if create:
        table.create(engine, checkfirst=True)
    else:
        table.drop(engine, checkfirst=True)
    engine.dispose()


def _rotation_app(url: str):
    """A WSGI function rotating a chain of tokens per thread in ``url``."""
    import json
    import secrets
    import threading
    from datetime import UTC, datetime

    from joserfc import jwt
    from joserfc.jwk import ECKey
    from sqlalchemy import bindparam, create_engine, event, insert, select, update

    from idp.db.direct import direct
    from idp.db.writer_queue import WriterQueue

    tokens = _rotation_table()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        WriterQueue(engine.url.database, 30).install(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    find = select(tokens.c.id, tokens.c.used_at).where(
        tokens.c.token_hash == bindparam("token_hash"))
    consume = update(tokens).where(tokens.c.id == bindparam("row_id"),
                                   tokens.c.used_at.is_(None)).values(used_at=bindparam("now"))
    kept = direct(engine)
    find, consume = kept.prepare(find), kept.prepare(consume)
    add = kept.prepare(insert(tokens), ("token_hash", "created_at"))
    key = ECKey.generate_key("P-256", private=True)
    chains = threading.local()

    def app(environ, start_response):
        now = datetime.now(UTC).replace(tzinfo=None)
        current = getattr(chains, "token", None)
        successor = secrets.token_hex(32)
        with kept.transaction() as transaction:
            row = transaction.first(find, {"token_hash": current}) if current else None
            if row is None or transaction.execute(consume, {"row_id": row.id, "now": now}) == 1:
                transaction.execute(add, {"token_hash": successor, "created_at": now})
        chains.token = successor
        issued = int(now.timestamp())
        signed = [jwt.encode({"alg": "ES256", "kid": "k1"}, {
            "iss": "http://127.0.0.1", "sub": "floor-user", "aud": "floor-client",
            "iat": issued, "exp": issued + 300, "jti": secrets.token_urlsafe(16)}, key)
            for _ in range(2)]
        body = json.dumps({"access_token": signed[0], "id_token": signed[1],
                           "refresh_token": successor, "token_type": "Bearer",
                           "expires_in": 300}).encode()
        return _token_answer(start_response, body)

    return _bridged(app)


def wsgi_hop():
    """granian factory: an SSO hop's store work a request, in the embedded
    store at ``FLOOR_STORE`` or, when it is a ``redis://`` URL, in Redis."""
    import hashlib
    import secrets
    from urllib.parse import urlencode

    from idp.store.embedded import EmbeddedStore
    from idp.store.redis import RedisStore

    where = os.environ["FLOOR_STORE"]
    store = (RedisStore(where, f"floor:{os.getpid()}:") if where.startswith("redis")
             else EmbeddedStore(where))
    session = secrets.token_urlsafe(32)
    now = int(time.time())
    store.put(f"session:{session}", {"account_id": 1, "auth_time": now, "acr": "loa2",
                                     "amr": ["pwd"], "sid": secrets.token_urlsafe(16)}, 3600)
    store.put("clients:generation", {"generation": secrets.token_hex(8)}, 3600)

    def app(environ, start_response):
        store.get_many([f"session:{session}", "clients:generation"])
        code = secrets.token_urlsafe(32)
        grant = {"client_id": "floor-client", "account_id": 1, "scope": "openid profile",
                 "redirect_uri": "http://127.0.0.1:9/cb", "nonce": secrets.token_urlsafe(16),
                 "code_challenge": secrets.token_urlsafe(32), "code_challenge_method": "S256",
                 "auth_time": now, "acr": "loa2", "amr": ["pwd"]}
        store.put_many_counted(f"codes:{session}", 60, 1 << 40,
                               [(f"code:{hashlib.sha256(code.encode()).hexdigest()}", grant, 60)])
        location = "http://127.0.0.1:9/cb?" + urlencode(
            {"code": code, "state": "floor", "iss": "http://127.0.0.1"})
        start_response("302 Found", [("Location", location), ("Cache-Control", "no-store"),
                                     ("Content-Length", "0")])
        return [b""]

    return _bridged(app)


def wsgi_rotation():
    """granian factory: a durable rotation a request in SQLite (``FLOOR_DATABASE``)."""
    return _rotation_app(os.environ["FLOOR_DATABASE"])


def _forget(url: str) -> None:
    """Delete the hop floor's keys (``floor:*``) from the Redis at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match="floor:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, seconds: float = 30) -> None:
    """Wait until anything answers at ``url`` (a redirect is not followed:
    the hop floor's points at a port nobody listens on)."""
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=1)
        try:
            connection.request("GET", parts.path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
        finally:
            connection.close()
    raise SystemExit(f"nothing answers at {url}")


def _wrk(url: str, args: argparse.Namespace) -> str:
    out = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s",
                          "--latency", url], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    return f"{float(rps):9.0f}/s  p50 {p50:>8}  p99 {p99:>8}"


def _serve(command: list[str], env: dict[str, str], url: str, args) -> str:
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(url)
        _wrk(url, argparse.Namespace(**{**vars(args), "duration": 1}))  # warm-up
        return _wrk(url, args)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=5, help="seconds per load")
    parser.add_argument("--pg", metavar="URL",
                        help="a PostgreSQL database (SQLAlchemy URL) for wsgi-rotation-pg; "
                             "it gets a table floor_tokens")
    parser.add_argument("--redis", metavar="URL",
                        help="a Redis database for wsgi-hop-redis; its keys are under floor:")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    bench = str(Path(__file__).resolve().parent)
    bin_dir = Path(sys.executable).parent

    env = {**os.environ, "FLOOR_THREADS": str(args.threads),
           "PYTHONPATH": os.pathsep.join([bench, os.environ.get("PYTHONPATH", "")])}
    scratch = tempfile.mkdtemp(prefix="idp-floor-db.")
    floors = [("bare-flask", "bare_flask", {}), ("bare-wsgi", "bare_wsgi", {}),
              ("wsgi-es256", "wsgi_es256", {}),
              ("wsgi-rotation", "wsgi_rotation",
               {"FLOOR_DATABASE": f"sqlite:///{scratch}/floor.sqlite3"}),
              ("wsgi-hop", "wsgi_hop", {"FLOOR_STORE": f"{scratch}/store.sqlite3"})]
    if args.pg:
        floors.append(("wsgi-rotation-pg", "wsgi_rotation", {"FLOOR_DATABASE": args.pg}))
    if args.redis:
        floors.append(("wsgi-hop-redis", "wsgi_hop", {"FLOOR_STORE": args.redis}))
    try:
        for label, factory, extra in floors:
            if "FLOOR_DATABASE" in extra:
                _rotation_schema(extra["FLOOR_DATABASE"], create=True)
            port = _port()
            command = [str(bin_dir / "granian"), "--interface", "rsgi", "--factory", "--http",
                       "1", "--workers", str(args.workers), "--host", "127.0.0.1", "--port",
                       str(port), "--no-ws", f"floor:{factory}"]
            answer = _serve(command, {**env, **extra}, f"http://127.0.0.1:{port}/userinfo",
                            args)
            print(f"{label:<17} {answer}")
    finally:
        if args.pg:
            _rotation_schema(args.pg, create=False)
        if args.redis:
            _forget(args.redis)
        shutil.rmtree(scratch, ignore_errors=True)

    port = _port()
    with tempfile.TemporaryDirectory(prefix="idp-floor.") as instance:
        env = {**os.environ, "IDP_INSTANCE_PATH": instance,
               "IDP_ISSUER": f"http://127.0.0.1:{port}"}
        command = [str(bin_dir / "idp"), "serve", "--port", str(port),
                   "--workers", str(args.workers), "--threads", str(args.threads)]
        answer = _serve(command, env, f"http://127.0.0.1:{port}/userinfo", args)
        print(f"provider-floor    {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
