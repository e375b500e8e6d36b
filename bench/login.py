#!/usr/bin/env python3
"""Password login against argon2id (issue 9): the login rate beside the bare
argon2id verification rate at the same parameters. Prints its figures.

What is measured (each for ``--seconds``, after ``--warmup`` where a server
is involved):

1. **Bare argon2id verification**, argon2-cffi's ``PasswordHasher.verify``
   with the parameters of ``[passwords]`` (the same settings, environment
   included, that the server reads): serially on one thread, and
   concurrently as the server runs them, ``--workers`` processes of
   ``min(--threads, passwords.max_concurrent_verifications)`` threads each
   (the hasher lets that many verify at once per process).
2. **Login against a running provider** (``--url``, e.g. ``idp serve`` set
   up by ``bench/run.sh``), by ``--concurrency`` client threads, each with
   an account of its own (the throttle counts logins per account, so
   threads sharing one would hold each other's waits). Every login is a new
   browser: a new connection (so logins spread over the server's worker
   processes as new visitors do, not as a few kept-alive connections
   happen to fall), a GET of ``/login`` without cookies, whose Flask
   session cookie and form (CSRF token, hidden fields) the POST then sends
   back with the username and password, answered with a redirect and the
   SSO cookie. Two runs:

   - ``GET+POST``: each thread GETs the form and POSTs it, in a closed loop;
     a login's time includes its GET.
   - ``POST``: the forms were fetched (each by its own GET, as above) before
     the timing started; only the POSTs are timed. This is the figure the
     issue's target (90 % of the bare rate) is about: the GET of the form is
     a separate page view, about a tenth of a POST's CPU, that a browser may
     make long before it submits.

   Any answer other than a redirect away from ``/login`` counts as an error.
   With ``--server-pid`` the CPU used by that process and its children
   (granian's workers) is reported per login.
3. **The ratios** login rate / bare rate: the concurrent bare rate, or
   with ``--concurrency 1`` the one-thread rate.

``--in-process`` measures serially in this process instead, without a
server or network: the app on a temporary instance (a SQLite database of its
own), Flask's test client,
alternating rounds of bare verifications and logins (GET not timed), and
``--profile FILE`` writes a cProfile of the timed POSTs (``python -m pstats
FILE``).

Examples::

    BENCH=login bash bench/run.sh            # fresh instance and idp serve on :5099
    python bench/login.py --in-process --seconds 5 --profile /tmp/login.prof
    python bench/login.py --url=http://127.0.0.1:5000 --username=bench \\
        --password='...' --accounts=8          # accounts bench, bench-2 ... bench-8
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (  # noqa: E402
    Connection,
    Request,
    hidden_inputs,
    load_average,
    percentile_ms,
)

#: Stands for the account password in the bare runs (any text does).
BARE_PASSWORD = "plum-blossom-river-bench"


# --- accounts ------------------------------------------------------------------


def account_name(username: str, index: int) -> str:
    """The ``index``-th account (0-based) of a run: ``username`` itself,
    then ``username-2``, ``username-3``... (as ``bench/run.sh`` creates them)."""
    return username if index == 0 else f"{username}-{index + 1}"


# --- bare argon2id ---------------------------------------------------------------


def argon2_hasher(settings):
    """argon2-cffi's hasher with the ``[passwords]`` parameters (argon2id)."""
    import argon2

    return argon2.PasswordHasher(time_cost=settings["argon2_time_cost"],
                                 memory_cost=settings["argon2_memory_cost"],
                                 parallelism=settings["argon2_parallelism"],
                                 type=argon2.Type.ID)


def _verify_loop(settings: dict, stored: str, seconds: float, threads: int) -> list[float]:
    """Verify ``stored`` from ``threads`` threads for ``seconds``; the
    latencies of every verification (seconds)."""
    hasher = argon2_hasher(settings)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    gate = threading.Event()

    def run(out: list[float]) -> None:
        gate.wait()
        deadline = time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                return
            hasher.verify(stored, BARE_PASSWORD)
            out.append(time.perf_counter() - t0)

    pool = [threading.Thread(target=run, args=(out,)) for out in latencies]
    for thread in pool:
        thread.start()
    gate.set()
    for thread in pool:
        thread.join()
    return [x for out in latencies for x in out]


@dataclass
class Result:
    """One measured run."""

    name: str
    count: int
    errors: int
    seconds: float
    latencies: list[float]  # seconds
    client_cpu: float | None = None  # share of one core used by this process
    server_cpu_ms: float | None = None  # server CPU per operation
    samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def ms(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, milliseconds."""
        return percentile_ms(self.latencies, p)


def bare_runs(settings: dict, seconds: float, workers: int, per_worker: int) -> list[Result]:
    """Serial and concurrent bare verification rates (see the module doc)."""
    stored = argon2_hasher(settings).hash(BARE_PASSWORD)
    _verify_loop(settings, stored, min(1.0, seconds), 1)  # warm-up (allocator, caches)
    start = time.perf_counter()
    serial = _verify_loop(settings, stored, seconds, 1)
    results = [Result("argon2id verify, 1 thread", len(serial), 0,
                      time.perf_counter() - start, serial)]
    # One process per server worker, each with the hasher's concurrency.
    ctx = __import__("multiprocessing").get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(_noop, range(workers)))  # start the processes before timing
        start = time.perf_counter()
        parts = list(pool.map(_verify_loop, [settings] * workers, [stored] * workers,
                              [seconds] * workers, [per_worker] * workers))
        elapsed = time.perf_counter() - start
    latencies = [x for part in parts for x in part]
    results.append(Result(f"argon2id verify, {workers} proc x {per_worker} threads",
                          len(latencies), 0, elapsed, latencies))
    return results


def _noop(_: int) -> None:
    return None


# --- login over HTTP -------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    """A login form as a new browser got it: its cookies and fields."""

    cookie: str
    fields: dict[str, str]


def _cookie_header(set_cookies: list[str]) -> str:
    return "; ".join(value.split(";", 1)[0].strip() for value in set_cookies)


class Browser:
    """One client thread's connection and account."""

    def __init__(self, host: str, port: int, host_header: str, username: str,
                 password: str) -> None:
        self.conn = Connection(host, port, 10)
        self.host_header = host_header
        self.username = username
        self.password = password

    def get_form(self) -> Form:
        """GET /login as a new browser: on a new connection, without cookies."""
        self.conn.close()
        status, headers, body = self.conn.exchange(Request("GET", "/login", {
            "Host": self.host_header, "Accept": "text/html", "User-Agent": "idp-bench/1"}))
        if status != 200:
            raise RuntimeError(f"GET /login answered HTTP {status}: {body[:200]!r}")
        fields = hidden_inputs(body.decode())
        if "csrf_token" not in fields:
            raise RuntimeError("GET /login: no csrf_token in the form")
        return Form(_cookie_header(headers.get_all("Set-Cookie") or []), fields)

    def post(self, form: Form, new_connection: bool = False) -> tuple[int, str]:
        """POST the form with this browser's account, on the connection of
        its GET or, with ``new_connection``, a new one; ``(status,
        problem)`` where ``problem`` is empty for a successful login."""
        if new_connection:
            self.conn.close()
        body = urlencode({**form.fields, "username": self.username,
                          "password": self.password}).encode()
        status, headers, answer = self.conn.exchange(Request("POST", "/login", {
            "Host": self.host_header, "Accept": "text/html", "User-Agent": "idp-bench/1",
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(body)), "Cookie": form.cookie}, body))
        location = headers.get("Location") or ""
        if status in (302, 303) and "/login" not in location:
            return status, ""
        return status, f"HTTP {status} {location}: {answer[:160]!r}"


class ServerCpu:
    """CPU seconds used by a process and its descendants (Linux /proc)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                todo += [int(x) for x in task.read_text().split()]
        return pids

    def seconds(self) -> float | None:
        """utime + stime of the tree now, or None without a pid."""
        if self.pid is None:
            return None
        total = 0
        for pid in self._tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / self.tick


def login_run(name: str, browsers: list[Browser], seconds: float, cpu: ServerCpu,
              forms: list[list[Form]] | None = None) -> Result:
    """Log in from every browser in a closed loop for ``seconds``: GET then
    POST, or, with ``forms`` (one list per browser), POSTs of those forms
    only. Latencies are the POSTs'."""
    gate = threading.Event()
    outs: list[tuple[list[float], list[str], list[int]]] = [([], [], [0]) for _ in browsers]

    def run(i: int) -> None:
        browser, (latencies, problems, count) = browsers[i], outs[i]
        stock = forms[i] if forms is not None else None
        gate.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            try:
                if stock is not None:
                    if not stock:
                        problems.append("ran out of prefetched forms")
                        return
                    form = stock.pop()
                else:
                    form = browser.get_form()
                t0 = time.perf_counter()
                _status, problem = browser.post(form, new_connection=stock is not None)
                latencies.append(time.perf_counter() - t0)
            except (OSError, http.client.HTTPException, RuntimeError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            count[0] += 1
            if problem:
                problems.append(problem)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(browsers))]
    for thread in threads:
        thread.start()
    cpu0, server0, start = os.times(), cpu.seconds(), time.perf_counter()
    gate.set()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.perf_counter() - start
    cpu1, server1 = os.times(), cpu.seconds()
    count = sum(out[2][0] for out in outs)
    problems = [p for out in outs for p in out[1]]
    client = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / elapsed
    server_ms = ((server1 - server0) * 1000 / count
                 if server0 is not None and server1 is not None and count else None)
    return Result(name, count, len(problems), elapsed, [x for out in outs for x in out[0]],
                  client, server_ms, problems[:3])


def prefetch(browsers: list[Browser], per_browser: int) -> list[list[Form]]:
    """``per_browser`` forms for each browser, each from its own GET, fetched
    by all browsers at once."""
    stocks: list[list[Form]] = [[] for _ in browsers]

    def run(i: int) -> None:
        stocks[i] = [browsers[i].get_form() for _ in range(per_browser)]

    with concurrent.futures.ThreadPoolExecutor(len(browsers)) as pool:
        list(pool.map(run, range(len(browsers))))
    return stocks


# --- in-process --------------------------------------------------------------------


def in_process(args: argparse.Namespace) -> list[Result]:
    """Serial measurement without a server (see the module doc), on a
    temporary instance: a SQLite database of its own, and the embedded
    store there (or Redis with ``IDP_REDIS_URL``, under a prefix of its own),
    removed afterwards."""
    folder = tempfile.mkdtemp(prefix="idp-login-bench.")
    try:
        return _in_process(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _in_process(args: argparse.Namespace, folder: str) -> list[Result]:
    from idp import create_app
    from idp.accounts import service as accounts
    from idp.unit_of_work import unit

    app = create_app({"instance_path": folder, "database_url": f"sqlite:///{folder}/idp.sqlite3",
                      "issuer": "http://127.0.0.1:5099",
                      "store_prefix": f"idploginbench:{os.getpid()}:"})
    rt = app.extensions["idp"]
    password = "plum-blossom-river-bench"
    with app.app_context(), unit():
        stored = accounts.create_account(rt, "bench", password, name=None, email=None,
                                         ip=None).password_hash
    hasher = argon2_hasher(rt.settings["passwords"])
    profile = cProfile.Profile() if args.profile else None
    bare: list[float] = []
    posts: list[float] = []
    gets: list[float] = []

    def login() -> None:
        client = app.test_client()  # a new browser
        t0 = time.perf_counter()
        page = client.get("/login")
        t1 = time.perf_counter()
        fields = hidden_inputs(page.text)
        if page.status_code != 200 or "csrf_token" not in fields:
            raise RuntimeError(f"GET /login: HTTP {page.status_code}, no CSRF token")
        data = {**fields, "username": "bench", "password": password}
        if profile is not None:
            profile.enable()
        t2 = time.perf_counter()
        answer = client.post("/login", data=data)
        t3 = time.perf_counter()
        if profile is not None:
            profile.disable()
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"POST /login: HTTP {answer.status_code}")
        gets.append(t1 - t0)
        posts.append(t3 - t2)

    for _ in range(5):  # warm-up: templates compiled, connections opened
        login()
        hasher.verify(stored, password)
    gets.clear()
    posts.clear()
    rounds = 3
    for _ in range(rounds):
        deadline = time.perf_counter() + args.seconds / rounds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            hasher.verify(stored, password)
            bare.append(time.perf_counter() - t0)
        deadline = time.perf_counter() + args.seconds / rounds
        while time.perf_counter() < deadline:
            login()
    if profile is not None:
        profile.dump_stats(args.profile)
        print(f"# cProfile of {len(posts)} POSTs written to {args.profile}", file=sys.stderr)
    return [Result("argon2id verify (in-process)", len(bare), 0, sum(bare), bare),
            Result("login POST (in-process, test client)", len(posts), 0, sum(posts), posts),
            Result("login GET (in-process, not in the POST figure)", len(gets), 0, sum(gets),
                   gets)]


# --- output ------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    header = ("measurement", "count", "errors", "per s", "mean ms", "p50 ms", "p99 ms",
              "client CPU", "server CPU ms/op")
    rows = [(r.name, f"{r.count:,}", f"{r.errors:,}", f"{r.rate:,.1f}",
             f"{statistics.fmean(r.latencies) * 1000:.2f}" if r.latencies else "-",
             f"{r.ms(50):.2f}", f"{r.ms(99):.2f}",
             f"{r.client_cpu:.0%}" if r.client_cpu is not None else "-",
             f"{r.server_cpu_ms:.1f}" if r.server_cpu_ms is not None else "-")
            for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells) -> str:
        return "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="provider base URL (http only), e.g. http://127.0.0.1:5099")
    parser.add_argument("--username", help="first account; the others are USERNAME-2, -3...")
    parser.add_argument("--password", help="password of every account")
    parser.add_argument("--accounts", type=int, default=1, help="accounts that exist")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="client threads (browsers), at most --accounts")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed logins first, s")
    parser.add_argument("--workers", type=int, help="server processes (default: [server])")
    parser.add_argument("--threads", type=int, help="threads per process (default: [server])")
    parser.add_argument("--server-pid", type=int, help="report this process tree's CPU")
    parser.add_argument("--skip-bare", action="store_true", help="no bare argon2id runs")
    parser.add_argument("--runs", default="get+post,post",
                        help="login runs, comma-separated: get+post (GET timed too), post "
                             "(forms fetched before)")
    parser.add_argument("--in-process", action="store_true",
                        help="serial, in this process, with Flask's test client")
    parser.add_argument("--profile", metavar="FILE",
                        help="with --in-process: cProfile of the POSTs")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be > 0 and --concurrency >= 1")
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if not args.runs or set(args.runs) - {"get+post", "post"}:
        parser.error("--runs must name get+post, post or both")
    if args.profile and not args.in_process:
        parser.error("--profile needs --in-process")
    if not args.in_process:
        if not (args.url and args.username and args.password):
            parser.error("--url, --username and --password are needed (or --in-process)")
        if urlsplit(args.url).scheme != "http":
            parser.error("--url must be an http:// URL")
        if args.concurrency > args.accounts:
            parser.error("each client thread needs an account of its own: "
                         "--concurrency must be at most --accounts")
        args.url = args.url.rstrip("/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from idp.config import load_settings

    settings = load_settings()
    passwords = dict(settings["passwords"])
    workers = args.workers or settings["server"]["workers"]
    threads = args.threads or settings["server"]["threads"]
    per_worker = min(threads, passwords["max_concurrent_verifications"])
    print(f"# argon2id t={passwords['argon2_time_cost']} m={passwords['argon2_memory_cost']} KiB "
          f"p={passwords['argon2_parallelism']}; {os.cpu_count()} CPUs, load average "
          f"{load_average()}", file=sys.stderr)

    if args.in_process:
        results = in_process(args)
        print(table(results))
        bare, post, get = results
        bare_ms, post_ms = statistics.fmean(bare.latencies), statistics.fmean(post.latencies)
        get_ms = statistics.fmean(get.latencies)
        print(f"\nratio, serial in-process: login POST / bare = {bare_ms / post_ms:.2f} "
              f"({post_ms * 1000:.1f} ms a login against {bare_ms * 1000:.1f} ms a "
              f"verification); counting the GET of the form too: "
              f"{bare_ms / (post_ms + get_ms):.2f}")
        return 0

    results: list[Result] = []
    if not args.skip_bare:
        results += bare_runs(passwords, args.seconds, workers, per_worker)
        print(f"# bare runs done; load average {load_average()}", file=sys.stderr)
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    browsers = [Browser(host, port, parts.netloc, account_name(args.username, i), args.password)
                for i in range(args.concurrency)]
    cpu = ServerCpu(args.server_pid)
    try:
        for browser in browsers:  # each account logs in once: fail fast
            _status, problem = browser.post(browser.get_form())
            if problem:
                raise RuntimeError(f"login of {browser.username}: {problem}")
    except (OSError, http.client.HTTPException, RuntimeError) as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        return 2
    if args.warmup > 0:
        login_run("warm-up", browsers, args.warmup, cpu)
    label = f"{args.concurrency} browsers"
    # One browser is compared with one thread verifying, more with the
    # server's concurrency.
    bare = None if args.skip_bare else results[0 if args.concurrency == 1 else 1]
    bare_rate = bare.rate if bare else None
    full = post = None
    if "get+post" in args.runs:
        full = login_run(f"login GET+POST, {label}", browsers, args.seconds, cpu)
        results.append(full)
    if "post" in args.runs:
        # Enough forms for the run at the bare rate (no login is faster),
        # or at twice the GET+POST rate without a bare run, with a margin.
        ceiling = bare_rate or 2 * (full.rate if full else 100.0)
        per_browser = int(ceiling * (args.seconds + args.warmup) * 1.3 / args.concurrency) + 10
        forms = prefetch(browsers, per_browser)
        if args.warmup > 0:  # takes its forms from the same stocks
            login_run("warm-up", browsers, args.warmup, cpu, forms)
        post = login_run(f"login POST (forms fetched before), {label}", browsers,
                         args.seconds, cpu, forms)
        results.append(post)
    print(f"# done; load average {load_average()}", file=sys.stderr)
    print(table(results))
    if bare_rate:
        ratios = [f"{r.name.split(',')[0]} {r.rate / bare_rate:.2f}" for r in (post, full) if r]
        print(f"\nratio to the bare rate ({bare.name}: {bare_rate:.1f}/s): " + ", ".join(ratios))
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"\n{r.name}: {r.errors} error(s); first: " + "; ".join(r.samples))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
