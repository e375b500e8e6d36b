#!/usr/bin/env python3
"""Load benchmark of a running provider.

Scenarios (each run for ``--seconds`` by ``--concurrency`` threads, every
thread on its own keep-alive HTTP/1.1 connection):

- ``discovery``: GET /.well-known/openid-configuration
- ``jwks``: GET /jwks.json
- ``token``: POST /token, grant_type=client_credentials, client_secret_basic
- ``userinfo``: GET /userinfo with a bearer access token obtained once, before
  the timed run, by a full authorization code flow (scripted login) with a
  second, confidential trusted client
- ``authorize``: GET /authorize of that trusted client with the SSO session
  cookie of that login: the single sign-on hop of a relying party, answered with a
  302 carrying a code (request checks, the account's assurance level from
  its evidence, a grant row committed, the code stored). The server needs
  ``throttle.codes_per_session`` raised for it (``bench/run.sh`` does so).

Any response other than the scenario's expected status (2xx; 302 for
``authorize``) or transport error counts as an error. Prints one table:
requests, errors, requests/s, p50 and p99 latency. ``bench/run.sh`` sets up a
fresh provider instance and runs this script against it.

Example (``--opt=value``, since generated ids and secrets may begin with "-")::

    python bench/bench.py --url=http://127.0.0.1:5000 \\
        --client-id=CC_ID --client-secret=CC_SECRET \\
        --web-client-id=WEB_ID --web-client-secret=WEB_SECRET \\
        --redirect-uri=http://127.0.0.1:9/bench/callback \\
        --username=bench --password='bench password'
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import parse_qs, quote_plus, urlencode, urljoin, urlsplit

import requests

SCENARIOS = ("discovery", "jwks", "token", "userinfo", "authorize")
DEFAULT_REDIRECT_URI = "http://127.0.0.1:9/bench/callback"
ERROR_SAMPLES = 3


def percentile_ms(latencies: list[float], p: float) -> float:
    """Nearest-rank ``p``-th percentile (0-100) of ``latencies`` (seconds),
    in milliseconds; NaN without any."""
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1] * 1000


class BenchError(Exception):
    """Setup failed; the message says why."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None
    expected: int | None = None  # None: any 2xx


@dataclass
class WorkerResult:
    latencies: list[float] = field(default_factory=list)  # of every response
    failures: int = 0  # transport errors (no response)
    errors: int = 0  # transport errors and non-2xx responses
    samples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.samples) < ERROR_SAMPLES:
            self.samples.append(text)


@dataclass
class ScenarioResult:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    samples: list[str]
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        return percentile_ms(self.latencies, p)


# --- load generation -----------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection (http.client), reopened when the
    server closes it."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def send(self, req: Request) -> tuple[int, bytes]:
        """Send ``req``; the answer's status and body."""
        status, _headers, body = self.exchange(req)
        return status, body

    def exchange(self, req: Request) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Send ``req``; the answer's status, headers and body."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(req.method, req.path, body=req.body, headers=req.headers)
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, response.headers, body

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def worker(req: Request, host: str, port: int, deadline: float, start_gate: threading.Event,
           result: WorkerResult, timeout: float) -> None:
    conn = Connection(host, port, timeout)
    latencies = result.latencies
    clock = time.perf_counter
    start_gate.wait()
    try:
        while True:
            t0 = clock()
            if t0 >= deadline:
                break
            try:
                status, body = conn.send(req)
            except (OSError, http.client.HTTPException) as exc:
                result.failures += 1
                result.error(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(clock() - t0)
            if (status != req.expected) if req.expected else not 200 <= status < 300:
                result.error(f"HTTP {status}: {body[:200]!r}")
    finally:
        conn.close()


def run_scenario(name: str, req: Request, host: str, port: int, seconds: float,
                 concurrency: int, timeout: float = 10.0) -> ScenarioResult:
    """Run ``req`` in a closed loop from ``concurrency`` threads for ``seconds``."""
    gate = threading.Event()
    results = [WorkerResult() for _ in range(concurrency)]
    cpu0 = os.times()
    start = time.perf_counter()
    deadline = start + seconds
    threads = [threading.Thread(target=worker, name=f"{name}-{i}", daemon=True,
                                args=(req, host, port, deadline, gate, results[i], timeout))
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(seconds + timeout + 5)
    elapsed = time.perf_counter() - start
    cpu1 = os.times()
    latencies = [x for r in results for x in r.latencies]
    errors = sum(r.errors for r in results)
    samples = [s for r in results for s in r.samples][:ERROR_SAMPLES]
    requests_done = len(latencies) + sum(r.failures for r in results)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return ScenarioResult(name, requests_done, errors, elapsed, latencies, samples, cpu / elapsed)


# --- setup: requests per scenario, and a bearer token from a code flow ------------


def hidden_inputs(html: str) -> dict[str, str]:
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", html, flags=re.IGNORECASE):
        attrs = {k.lower(): unescape(v1 or v2) for k, v1, v2 in
                 re.findall(r"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""", tag)}
        if attrs.get("type", "").lower() == "hidden" and attrs.get("name"):
            fields[attrs["name"]] = attrs.get("value", "")
    return fields


def code_flow_access_token(base: str, client_id: str, client_secret: str, redirect_uri: str,
                           username: str, password: str) -> tuple[str, str]:
    """Log in through the HTML forms (authorization code flow with PKCE S256)
    and return the access token and the SSO session cookie header."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state = secrets.token_urlsafe(12)
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
             "scope": "openid profile email", "state": state, "nonce": secrets.token_urlsafe(12),
             "code_challenge": challenge, "code_challenge_method": "S256"}
    with requests.Session() as browser:
        response = browser.get(f"{base}/authorize?{urlencode(query)}", allow_redirects=False)
        logged_in = consented = False
        for _ in range(12):
            if response.status_code in (301, 302, 303):
                location = urljoin(response.url, response.headers["Location"])
                if location.startswith(redirect_uri):
                    break
                if not location.startswith(base):
                    raise BenchError(f"code flow: redirected to {location}")
                response = browser.get(location, allow_redirects=False)
                continue
            path = urlsplit(response.url).path
            if response.status_code == 200 and path == "/login" and not logged_in:
                logged_in = True
                fields = {**hidden_inputs(response.text), "username": username,
                          "password": password}
                response = browser.post(f"{base}/login", data=fields, allow_redirects=False)
                continue
            if response.status_code == 200 and path == "/consent" and not consented:
                consented = True
                fields = {**hidden_inputs(response.text), "decision": "approve"}
                response = browser.post(f"{base}/consent", data=fields, allow_redirects=False)
                continue
            raise BenchError(f"code flow stopped at {response.url} (HTTP "
                             f"{response.status_code}): {response.text[:300]}")
        else:
            raise BenchError("code flow: too many redirects")
        cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    params = parse_qs(urlsplit(location).query)
    if "code" not in params:
        raise BenchError(f"code flow: no code in {location}")
    if params.get("state") != [state]:
        raise BenchError("code flow: state mismatch")
    token = requests.post(f"{base}/token", auth=(client_id, client_secret), data={
        "grant_type": "authorization_code", "code": params["code"][0],
        "redirect_uri": redirect_uri, "code_verifier": verifier}, timeout=10)
    if token.status_code != 200:
        raise BenchError(f"code flow: token request failed: {token.status_code} {token.text}")
    return token.json()["access_token"], cookie


def basic_auth(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: form-urlencode each part before base64.
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def build_requests(args: argparse.Namespace, host_header: str) -> dict[str, Request]:
    common = {"Host": host_header, "Accept": "application/json", "Connection": "keep-alive",
              "User-Agent": "idp-bench/1"}
    reqs: dict[str, Request] = {}
    if "discovery" in args.scenarios:
        reqs["discovery"] = Request("GET", "/.well-known/openid-configuration", dict(common))
    if "jwks" in args.scenarios:
        reqs["jwks"] = Request("GET", "/jwks.json", dict(common))
    if "token" in args.scenarios:
        body = urlencode({"grant_type": "client_credentials"}).encode()
        reqs["token"] = Request("POST", "/token", {
            **common, "Authorization": basic_auth(args.client_id, args.client_secret),
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(body))}, body)
    if "userinfo" in args.scenarios or "authorize" in args.scenarios:
        access_token, cookie = code_flow_access_token(
            args.url, args.web_client_id, args.web_client_secret, args.redirect_uri,
            args.username, args.password)
        reqs["userinfo"] = Request("GET", "/userinfo", {
            **common, "Authorization": f"Bearer {access_token}"})
        challenge = base64.urlsafe_b64encode(hashlib.sha256(
            secrets.token_bytes(32)).digest()).decode().rstrip("=")
        query = urlencode({"response_type": "code", "client_id": args.web_client_id,
                           "redirect_uri": args.redirect_uri, "scope": "openid profile",
                           "state": "bench", "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        reqs["authorize"] = Request("GET", f"/authorize?{query}", {
            **common, "Accept": "text/html", "Cookie": cookie}, expected=302)
    return {name: req for name, req in reqs.items() if name in args.scenarios}


def check_once(name: str, req: Request, host: str, port: int) -> None:
    """Fail fast with the server's answer when a scenario cannot succeed at all."""
    conn = Connection(host, port, 10)
    try:
        status, body = conn.send(req)
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"{name}: {req.method} {req.path}: {exc}") from None
    finally:
        conn.close()
    if (status != req.expected) if req.expected else not 200 <= status < 300:
        raise BenchError(f"{name}: {req.method} {req.path} answered HTTP {status}: "
                         f"{body[:300]!r}")


# --- output -------------------------------------------------------------------


def table(results: list[ScenarioResult]) -> str:
    header = ("scenario", "requests", "errors", "req/s", "p50 ms", "p99 ms", "bench CPU")
    rows = [(r.name, f"{r.requests:,}", f"{r.errors:,}", f"{r.rate:,.0f}",
             f"{r.percentile(50):.2f}", f"{r.percentile(99):.2f}", f"{r.client_cpu:.0%}")
            for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells) -> str:
        return "| " + " | ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:5000",
                        help="provider base URL (its issuer), http only")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration per scenario")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="untimed warm-up per scenario, seconds (0: none)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    parser.add_argument("--client-id", help="client with grant type client_credentials")
    parser.add_argument("--client-secret")
    parser.add_argument("--web-client-id",
                        help="confidential trusted client with authorization_code (userinfo)")
    parser.add_argument("--web-client-secret")
    parser.add_argument("--redirect-uri", default=DEFAULT_REDIRECT_URI,
                        help="registered redirect URI of the web client")
    parser.add_argument("--username", help="test account (userinfo)")
    parser.add_argument("--password")
    parser.add_argument("--json", dest="json_out", metavar="FILE",
                        help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    args.url = args.url.rstrip("/")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if urlsplit(args.url).scheme != "http":
        parser.error("--url must be an http:// URL")
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be > 0 and --concurrency >= 1")
    if "token" in args.scenarios and not (args.client_id and args.client_secret):
        parser.error("the token scenario needs --client-id and --client-secret")
    if {"userinfo", "authorize"} & set(args.scenarios) and not (
            args.web_client_id and args.web_client_secret and args.username and args.password):
        parser.error("the userinfo and authorize scenarios need --web-client-id, "
                     "--web-client-secret, --username and --password")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        discovery = requests.get(f"{args.url}/.well-known/openid-configuration", timeout=10)
        discovery.raise_for_status()
        issuer = discovery.json().get("issuer")
        if issuer != args.url:
            print(f"warning: issuer {issuer!r} differs from --url {args.url!r}", file=sys.stderr)
        reqs = build_requests(args, parts.netloc)
        for name, req in reqs.items():
            check_once(name, req, host, port)
    except (BenchError, requests.RequestException, ValueError) as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        return 2

    print(f"# {args.url}: {args.concurrency} threads x {args.seconds:g} s per scenario "
          f"(+{args.warmup:g} s warm-up), keep-alive connections; {os.cpu_count()} CPUs, "
          f"load average {load_average()}", file=sys.stderr)
    results = []
    for name in args.scenarios:
        if args.warmup > 0:
            run_scenario(name, reqs[name], host, port, args.warmup, args.concurrency)
        result = run_scenario(name, reqs[name], host, port, args.seconds, args.concurrency)
        print(f"# {name}: {result.requests} requests, {result.errors} errors, "
              f"{result.rate:.0f}/s", file=sys.stderr)
        results.append(result)

    print(f"# done; load average {load_average()}", file=sys.stderr)
    print(table(results))
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"\n{r.name}: {r.errors} error(s); first: " + "; ".join(r.samples))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump([{"scenario": r.name, "requests": r.requests, "errors": r.errors,
                        "seconds": round(r.seconds, 3), "rps": round(r.rate, 1),
                        "p50_ms": round(r.percentile(50), 3),
                        "p99_ms": round(r.percentile(99), 3),
                        "bench_cpu": round(r.client_cpu, 3), "error_samples": r.samples}
                       for r in results], fh, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
