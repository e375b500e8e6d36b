#!/usr/bin/env python3
"""Profile the provider's user-token endpoints in one process (cProfile).

Sets up a fresh instance as ``bench/run.sh`` does (a temporary instance
folder, a client_credentials client, a trusted web client with refresh
tokens and an account, through the ``idp`` CLI), serves it from a thread on
127.0.0.1 only for one scripted login, then calls each endpoint
``--count`` times through Flask's test client: no HTTP server is measured,
only the provider's own work (its server time). Prints the mean, median
and 99th percentile time per request in milliseconds and, with
``--profile``, the top of the cProfile listing by cumulative time.

Environment: ``IDP_DATABASE_URL`` and ``IDP_REDIS_URL`` as for ``idp serve``
(default: the embedded SQLite database and store); with ``--profile``,
``HOTPATHS_CALLERS`` (a regular expression of function names) also prints
who called those functions.

Example::

    python bench/hotpaths.py --count 2000 --profile userinfo introspection
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import code_flow_access_token, percentile_ms  # noqa: E402

REDIRECT_URI = "http://127.0.0.1:9/bench/callback"
ENDPOINTS = ("token", "userinfo", "introspection", "authorize", "refresh")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _idp(*args: str, stdin: str | None = None) -> str:
    idp = Path(sys.executable).with_name("idp")
    return subprocess.run([str(idp), *args], input=stdin, capture_output=True, text=True,
                          check=True).stdout


def _basic(client: dict) -> str:
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _refresh_tokens(app, client_id: str) -> list[str]:
    """One refresh token of a new grant of the benchmark account; each
    refresh answers the next token of its chain (rotation)."""
    from sqlalchemy import select

    from idp.accounts.models import Account
    from idp.authorizations.refresh_tokens import issue_refresh_token
    from idp.authorizations.service import create_grant
    from idp.extensions import db
    from idp.runtime import current_runtime
    from idp.timeutil import epoch

    with app.app_context():
        account = db.session.scalar(select(Account).where(Account.username == "profile"))
        grant = create_grant(current_runtime(), account_id=account.id, client_id=client_id,
                             scope="openid offline_access", claims=None, sid=None,
                             auth_time=epoch(), acr=None, amr=["pwd"], nonce=None)
        db.session.flush()
        token = issue_refresh_token(current_runtime(), grant)
        db.session.commit()
    return [token]


def _requests(app, base: str) -> dict[str, dict]:
    cc = json.loads(_idp("clients", "create", "--name", "profile cc",
                         "--grant-type", "client_credentials", "--alg", "ES256", "--json"))
    web = json.loads(_idp("clients", "create", "--name", "profile web", "--redirect-uri",
                          REDIRECT_URI, "--trusted", "--grant-type", "authorization_code",
                          "--grant-type", "refresh_token", "--alg", "ES256", "--json"))
    password = secrets.token_urlsafe(12)
    _idp("users", "create", "--username", "profile", "--password-stdin", stdin=password + "\n")
    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args, **kwargs) -> None:
            pass

    server = make_server("127.0.0.1", int(base.rsplit(":", 1)[1]), app, threaded=True,
                         request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        access_token, cookie = code_flow_access_token(
            base, web["client_id"], web["client_secret"], REDIRECT_URI, "profile", password)
    finally:
        server.shutdown()
    challenge = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    query = (f"response_type=code&client_id={web['client_id']}&redirect_uri={REDIRECT_URI}"
             f"&scope=openid+profile&state=bench&code_challenge={challenge}"
             "&code_challenge_method=S256")
    refresh = {"method": "POST", "path": "/token", "chain": _refresh_tokens(app, web["client_id"]),
               "headers": {"Authorization": _basic(web),
                           "Content-Type": "application/x-www-form-urlencoded"}}
    return {
        "refresh": refresh,
        "token": {"method": "POST", "path": "/token", "data": "grant_type=client_credentials",
                  "headers": {"Authorization": _basic(cc),
                              "Content-Type": "application/x-www-form-urlencoded"}},
        "userinfo": {"method": "GET", "path": "/userinfo",
                     "headers": {"Authorization": f"Bearer {access_token}"}},
        "introspection": {"method": "POST", "path": "/introspect",
                          "data": f"token={access_token}",
                          "headers": {"Authorization": _basic(web),
                                      "Content-Type": "application/x-www-form-urlencoded"}},
        "authorize": {"method": "GET", "path": "/authorize?" + query,
                      "headers": {"Cookie": cookie}, "expect": 302},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoints", nargs="*",
                        help=f"any of {', '.join(ENDPOINTS)} (default: all)")
    parser.add_argument("--count", type=int, default=1000, help="requests per endpoint")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads calling at once (a worker's threads under load); "
                             "the times then include waiting for the interpreter lock")
    parser.add_argument("--profile", action="store_true", help="print cProfile listings")
    parser.add_argument("--top", type=int, default=30, help="lines of each listing")
    args = parser.parse_args(argv)
    unknown = set(args.endpoints) - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoints: {', '.join(sorted(unknown))}")
    args.endpoints = args.endpoints or list(ENDPOINTS)

    port = _free_port()
    os.environ["IDP_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="idp-profile.")
    os.environ["IDP_ISSUER"] = f"http://127.0.0.1:{port}"
    os.environ["IDP_STORE_PREFIX"] = f"idpprofile:{secrets.token_hex(4)}:"
    os.environ["IDP_THROTTLE__CODES_PER_SESSION"] = "100000000"
    from idp import create_app

    app = create_app()
    base = f"http://127.0.0.1:{port}"
    requests = _requests(app, base)
    client = app.test_client(use_cookies=False)
    for name in args.endpoints:
        spec = requests[name]
        if "chain" in spec and args.threads > 1:
            print(f"{name:14} serial only (each refresh token is used once)")
            continue
        expect = spec.get("expect", 200)

        def call(spec=spec, expect=expect) -> None:
            chain = spec.get("chain")
            data = (f"grant_type=refresh_token&refresh_token={chain[-1]}" if chain
                    else spec.get("data"))
            answer = client.open(spec["path"], method=spec["method"], data=data,
                                 headers=spec["headers"], base_url=base)
            if answer.status_code != expect:
                raise SystemExit(f"{spec['path']}: HTTP {answer.status_code} {answer.data[:200]}")
            if chain:
                chain.append(answer.get_json()["refresh_token"])

        for _ in range(min(100, args.count)):
            call()
        profiler = cProfile.Profile() if args.profile else None
        times: list[float] = []

        def run(calls: int, call=call, times=times) -> None:
            mine = []
            for _ in range(calls):
                started = time.perf_counter()
                call()
                mine.append(time.perf_counter() - started)
            times.extend(mine)

        if profiler:
            profiler.enable()
        if args.threads == 1:  # in this thread, where the profiler runs
            run(args.count)
        else:
            workers = [threading.Thread(target=run, args=(args.count // args.threads,))
                       for _ in range(args.threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        if profiler:
            profiler.disable()
        mean = 1000 * sum(times) / len(times)
        p50, p99 = percentile_ms(times, 50), percentile_ms(times, 99)
        print(f"{name:14} {mean:7.3f} ms/request, p50 {p50:.3f} ms, p99 {p99:.3f} ms"
              f"{' (profiled)' if profiler else ''}")
        if profiler:
            stats = pstats.Stats(profiler).sort_stats("cumulative")
            stats.print_stats(args.top)
            if os.environ.get("HOTPATHS_CALLERS"):
                stats.print_callers(os.environ["HOTPATHS_CALLERS"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
