"""Contract tests of the ephemeral state store, run against every backend.

The embedded (SQLite) backend is always tested. The Redis backend is tested
when ``IDP_TEST_REDIS_URL`` names a database the tests may write to, e.g.
``redis://127.0.0.1:6379/15``; every test uses its own key prefix and removes
its keys afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sqlite3
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from idp.store import Store, StoreError, create_store
from idp.store.embedded import EmbeddedStore
from idp.store.redis import RedisStore

REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL")
THREADS = 8
PROCESSES = 4
# Generous, because spawned processes start slowly on a loaded machine.
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Backend:
    """Where the store under test lives; picklable so spawned processes can open it."""

    kind: str
    location: str
    prefix: str

    def open(self, prefix: str | None = None) -> EmbeddedStore | RedisStore:
        prefix = self.prefix if prefix is None else prefix
        if self.kind == "redis":
            return RedisStore(self.location, prefix)
        if self.kind == "redis-kept":  # every key kept, so every write tells its change
            return RedisStore(self.location, prefix, kept=("",))
        return EmbeddedStore(self.location, prefix)


_NEEDS_REDIS = pytest.mark.skipif(
    not REDIS_URL, reason="set IDP_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15) to test Redis")


@pytest.fixture(params=["embedded", pytest.param("redis", marks=_NEEDS_REDIS),
                        pytest.param("redis-kept", marks=_NEEDS_REDIS)])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Backend]:
    prefix = f"idp-test:{uuid.uuid4().hex}:"
    if request.param == "embedded":
        yield Backend("embedded", str(tmp_path / "store.sqlite3"), prefix)
        return
    yield Backend(request.param, REDIS_URL, prefix)
    with closing(redis.Redis.from_url(REDIS_URL)) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def store(backend: Backend) -> Iterator[EmbeddedStore | RedisStore]:
    opened = backend.open()
    yield opened
    opened.close()


def test_backends_implement_the_protocol(store):
    assert isinstance(store, Store)


def test_put_then_get_round_trips_json(store):
    value = {"sub": "açcount-1", "amr": ["pwd", "otp"], "n": 3, "x": 1.5, "ok": True, "z": None}
    store.put("k", value, 60)
    got = store.get("k")
    assert got == value
    got["n"] = 4
    assert store.get("k") == value


def test_get_missing_key_returns_none(store):
    assert store.get("missing") is None


def test_get_many_answers_in_key_order_with_none_for_missing(store, backend):
    store.put("a", {"v": 1}, 60)
    store.put("c", {"v": 3}, 60)
    with closing(backend.open(prefix=backend.prefix + "other:")) as other:
        other.put("b", {"v": "elsewhere"}, 60)

    assert store.get_many(["c", "b", "a", "a"]) == [{"v": 3}, None, {"v": 1}, {"v": 1}]
    assert store.get_many([]) == []


def test_put_many_stores_each_entry_with_its_own_lifetime(store):
    store.put("b", {"v": "old"}, 60)
    store.put_many([("a", {"v": 1}, 60), ("b", {"v": 2}, 1)])
    assert store.get_many(["a", "b"]) == [{"v": 1}, {"v": 2}]
    assert store.ttl("a") > 1 and store.ttl("b") == 1
    store.put_many([])


def test_put_many_checks_every_lifetime_before_writing(store):
    with pytest.raises(ValueError, match="ttl"):
        store.put_many([("a", {"v": 1}, 60), ("b", {"v": 2}, 0)])
    assert store.get_many(["a", "b"]) == [None, None]


def test_put_many_counted_stores_only_within_the_limit(store):
    assert store.put_many_counted("rate", 60, 2, [("a", {"v": 1}, 60), ("b", {"v": 2}, 5)]) == 1
    assert store.get_many(["a", "b"]) == [{"v": 1}, {"v": 2}] and store.ttl("b") <= 5
    assert store.put_many_counted("rate", 60, 2, [("c", {"v": 3}, 60)]) == 2
    assert store.put_many_counted("rate", 60, 2, [("d", {"v": 4}, 60)]) == 3
    assert store.get_many(["c", "d"]) == [{"v": 3}, None]
    # One window, counted like incr's: its expiry is the first call's.
    assert store.counter("rate") == 3 and store.ttl("rate") <= 60
    assert store.incr("rate", 60) == 4


def test_put_many_counted_checks_every_lifetime_before_counting(store):
    with pytest.raises(ValueError, match="ttl"):
        store.put_many_counted("rate", 60, 5, [("a", {"v": 1}, 60), ("b", {"v": 2}, 0)])
    with pytest.raises(ValueError, match="ttl"):
        store.put_many_counted("rate", 0, 5, [("a", {"v": 1}, 60)])
    assert store.counter("rate") == 0 and store.get("a") is None


def test_put_many_counted_stores_exactly_the_limit_under_a_race(store):
    limit = 3
    barrier = threading.Barrier(THREADS)

    def one(index: int) -> int:
        barrier.wait(TIMEOUT_SECONDS)
        return store.put_many_counted("race", 60, limit, [(f"k{index}", {"i": index}, 60)])

    with ThreadPoolExecutor(THREADS) as pool:
        counts = list(pool.map(one, range(THREADS)))
    assert sorted(counts) == list(range(1, THREADS + 1))
    stored = store.get_many([f"k{index}" for index in range(THREADS)])
    assert sorted(v["i"] for v in stored if v) == sorted(
        index for index, count in enumerate(counts) if count <= limit)


def test_replace_updates_only_a_live_entry(store):
    assert store.replace("absent", {"v": 1}, 60) is False
    assert store.get("absent") is None
    store.put("k", {"v": 1}, 60)
    assert store.replace("k", {"v": 2}, 5) is True
    assert store.get("k") == {"v": 2} and store.ttl("k") <= 5
    store.delete("k")
    assert store.replace("k", {"v": 3}, 60) is False
    assert store.get("k") is None


def test_replace_does_not_revive_an_expired_entry(store):
    store.put("k", {"v": 1}, 1)
    time.sleep(1.1)
    assert store.replace("k", {"v": 2}, 60) is False
    assert store.get("k") is None


def test_put_overwrites_value_and_expiry(store):
    store.put("k", {"v": 1}, 600)
    store.put("k", {"v": 2}, 10)
    assert store.get("k") == {"v": 2}
    assert store.ttl("k") <= 10


def test_add_stores_only_when_absent(store):
    assert store.add("jti", {"v": 1}, 60) is True
    assert store.add("jti", {"v": 2}, 600) is False
    assert store.get("jti") == {"v": 1}
    assert store.ttl("jti") <= 60
    store.delete("jti")
    assert store.add("jti", {"v": 3}, 60) is True
    assert store.get("jti") == {"v": 3}


def test_take_returns_the_value_once(store):
    store.put("code", {"client_id": "c1"}, 60)
    assert store.take("code") == {"client_id": "c1"}
    assert store.take("code") is None
    assert store.get("code") is None
    assert store.take("missing") is None


def test_delete_removes_key_and_ignores_missing(store):
    store.put("k", {}, 60)
    store.delete("k")
    assert store.get("k") is None
    store.delete("k")


def test_incr_counts_within_one_window(store):
    assert [store.incr("c", 60) for _ in range(3)] == [1, 2, 3]
    assert store.incr("other", 60) == 1


def test_incr_by_amount_and_give_back(store):
    assert store.incr("c", 60, 3) == 3
    assert store.incr("c", 60, -1) == 2
    assert store.counter("c") == 2
    assert 0 < store.ttl("c") <= 60
    assert store.incr("fresh", 60, -1) == -1
    assert store.ttl("fresh") is not None


def test_counter_reads_without_counting(store):
    assert store.counter("c") == 0
    store.incr("c", 60)
    store.incr("c", 60)
    assert store.counter("c") == 2
    assert store.counter("c") == 2
    store.delete("c")
    assert store.counter("c") == 0


def test_incr_keeps_the_expiry_of_the_first_call(store):
    store.incr("short", 5)
    store.incr("short", 600)
    assert store.ttl("short") <= 5
    store.incr("long", 600)
    store.incr("long", 5)
    assert store.ttl("long") > 5


def test_ttl_of_missing_key_is_none(store):
    assert store.ttl("missing") is None


def test_ttl_of_fresh_key_is_its_lifetime(store):
    store.put("k", {}, 30)
    assert 29 <= store.ttl("k") <= 30


def test_ttl_rounds_up(store):
    store.put("k", {}, 2)
    # About 1.3 s left now: rounding to nearest would say 1.
    time.sleep(0.7)
    assert store.ttl("k") == 2


def test_expired_entries_are_gone(store):
    store.put("gone", {"v": 1}, 1)
    store.add("replay", {"v": 1}, 1)
    store.incr("window", 1)
    store.put("kept", {"v": 1}, 60)
    time.sleep(1.1)

    assert store.get("gone") is None
    assert store.take("gone") is None
    assert store.ttl("gone") is None
    assert store.add("replay", {"v": 2}, 60) is True
    assert store.get("replay") == {"v": 2}
    assert store.incr("window", 60) == 1
    assert store.ttl("window") > 1
    assert store.get("kept") == {"v": 1}
    assert store.get_many(["gone", "kept"]) == [None, {"v": 1}]


@pytest.mark.parametrize("ttl", [0, -1, 1.5])
@pytest.mark.parametrize("method", ["put", "add", "replace", "incr"])
def test_ttl_must_be_whole_seconds_of_at_least_one(store, method, ttl):
    args = ("k", ttl) if method == "incr" else ("k", {}, ttl)
    with pytest.raises(ValueError, match="ttl"):
        getattr(store, method)(*args)
    assert store.get("k") is None


def test_prefix_separates_key_spaces(store, backend):
    with closing(backend.open(prefix=backend.prefix + "other:")) as other:
        store.put("k", {"v": 1}, 60)
        assert other.get("k") is None
        other.put("k", {"v": 2}, 60)
        assert store.get("k") == {"v": 1}


def test_ping_reaches_the_backend(store):
    store.ping()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["embedded", "redis", "redis-kept"])
def test_unreachable_backend_raises_store_error(kind, tmp_path):
    if kind.startswith("redis"):
        unreachable = RedisStore(f"redis://127.0.0.1:{_unused_port()}/0",
                                 kept=("",) if kind == "redis-kept" else ())
    else:
        not_a_directory = tmp_path / "file"
        not_a_directory.write_text("")
        unreachable = EmbeddedStore(str(not_a_directory / "store.sqlite3"))
    with closing(unreachable):
        with pytest.raises(StoreError):
            unreachable.ping()
        with pytest.raises(StoreError):
            unreachable.get("k")
        with pytest.raises(StoreError):
            unreachable.get_many(["k", "l"])
        with pytest.raises(StoreError):
            unreachable.put_many([("k", {}, 60)])
        with pytest.raises(StoreError):
            unreachable.replace("k", {}, 60)
        with pytest.raises(StoreError):
            unreachable.take("k")


def test_create_store_picks_redis_when_a_url_is_given(tmp_path):
    # Constructing must not connect, hence the unused port.
    url = f"redis://127.0.0.1:{_unused_port()}/0"
    with closing(create_store(url, str(tmp_path / "unused.sqlite3"))) as created:
        assert isinstance(created, RedisStore)
    assert not (tmp_path / "unused.sqlite3").exists()


@pytest.mark.parametrize("redis_url", [None, ""])
def test_create_store_falls_back_to_embedded(tmp_path, redis_url):
    path = tmp_path / "instance" / "sub" / "store.sqlite3"
    with closing(create_store(redis_url, str(path))) as created:
        assert isinstance(created, EmbeddedStore)
        created.put("k", {"v": 1}, 60)
        assert created.get("k") == {"v": 1}
    assert path.exists()


def test_create_store_reports_an_unusable_directory(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with pytest.raises(StoreError):
        create_store(None, str(not_a_directory / "sub" / "store.sqlite3"))


# Concurrency. Racers meet at a barrier before every call, so each call really
# overlaps the others' instead of the fastest racer running ahead of the rest.


def _take_each(store: Store, barrier, keys: list[str]) -> dict[str, dict | None]:
    taken = {}
    for key in keys:
        barrier.wait(TIMEOUT_SECONDS)
        taken[key] = store.take(key)
    return taken


def _add_once(store: Store, barrier, key: str) -> bool:
    barrier.wait(TIMEOUT_SECONDS)
    return store.add(key, {"v": 1}, 60)


def _count(store: Store, barrier, key: str, times: int) -> list[int]:
    counts = []
    for _ in range(times):
        barrier.wait(TIMEOUT_SECONDS)
        counts.append(store.incr(key, 60))
    return counts


def _race(work: Callable[..., Any], store: Store, barrier, args: tuple) -> Any:
    try:
        return work(store, barrier, *args)
    except BaseException:
        # Release the other racers now rather than after the barrier timeout.
        barrier.abort()
        raise


def _in_threads(store: Store, work: Callable[..., Any], *args: Any) -> list[Any]:
    barrier = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_race, work, store, barrier, args) for _ in range(THREADS)]
        return [future.result(TIMEOUT_SECONDS) for future in futures]


def _process_main(backend: Backend, barrier, results, work: Callable[..., Any], args) -> None:
    store = backend.open()
    try:
        results.put(("ok", _race(work, store, barrier, args)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
        raise
    finally:
        store.close()


def _in_processes(backend: Backend, work: Callable[..., Any], *args: Any) -> list[Any]:
    # spawn, not fork: each racer must open the store itself, as a server worker does.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=_process_main, args=(backend, barrier, results, work, args))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=TIMEOUT_SECONDS) for _ in processes]
    finally:
        for process in processes:
            process.join(TIMEOUT_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
    errors = [detail for status, detail in outcomes if status == "error"]
    assert not errors, errors[0]
    assert all(process.exitcode == 0 for process in processes)
    return [detail for _, detail in outcomes]


def _assert_each_taken_once(takes: list[dict[str, dict | None]], values: dict[str, dict]) -> None:
    for key, value in values.items():
        winners = [take[key] for take in takes if take[key] is not None]
        assert winners == [value], key


def test_take_is_exactly_once_across_threads(store):
    values = {f"code-{i}": {"i": i} for i in range(20)}
    for key, value in values.items():
        store.put(key, value, 60)
    _assert_each_taken_once(_in_threads(store, _take_each, list(values)), values)


def test_add_is_exactly_once_across_threads(store):
    outcomes = _in_threads(store, _add_once, "nonce")
    assert sorted(outcomes) == [False] * (THREADS - 1) + [True]


def test_take_is_exactly_once_across_processes(store, backend):
    values = {f"code-{i}": {"i": i} for i in range(20)}
    for key, value in values.items():
        store.put(key, value, 60)
    _assert_each_taken_once(_in_processes(backend, _take_each, list(values)), values)


def test_incr_counts_every_call_across_processes(backend):
    # Nothing touches the store first, so the processes also race to create it.
    counts = _in_processes(backend, _count, "attempts", 50)
    assert sorted(n for process_counts in counts for n in process_counts) == list(
        range(1, PROCESSES * 50 + 1)
    )


def test_map_fields_are_written_and_removed_one_at_a_time(store):
    assert store.map_get("sessions:1") == {}
    store.map_put("sessions:1", "a", {"started": 1}, 60)
    store.map_put("sessions:1", "b", {"started": 2}, 60)
    store.map_put("sessions:1", "a", {"started": 3}, 60)
    assert store.map_get("sessions:1") == {"a": {"started": 3}, "b": {"started": 2}}
    store.map_delete("sessions:1", "a")
    store.map_delete("sessions:1", "missing")
    assert store.map_get("sessions:1") == {"b": {"started": 2}}
    assert store.map_get("sessions:2") == {}


def test_map_fields_expire_each_on_its_own(store):
    store.map_put("m", "short", {"v": 1}, 1)
    store.map_put("m", "long", {"v": 2}, 60)
    time.sleep(1.1)
    assert store.map_get("m") == {"long": {"v": 2}}
    # A later short field does not shorten the map's life.
    store.map_put("m", "again", {"v": 3}, 1)
    time.sleep(1.1)
    assert store.map_get("m") == {"long": {"v": 2}}


def test_map_writers_of_different_fields_lose_nothing(store):
    fields = iter(range(THREADS))
    lock = threading.Lock()

    def put_own(store: Store, barrier: threading.Barrier) -> None:
        with lock:
            index = next(fields)
        barrier.wait()
        store.map_put("shared", f"field-{index}", {"i": index}, 60)

    _in_threads(store, put_own)
    assert store.map_get("shared") == {f"field-{i}": {"i": i} for i in range(THREADS)}


def test_queue_gives_due_items_oldest_first_and_hides_them_while_leased(store):
    assert store.queue_claim("q", 30) is None
    store.queue_push("q", "later", {"n": 3}, 60, 120)
    store.queue_push("q", "first", {"n": 1}, 0, 120)
    store.queue_push("q", "second", {"n": 2}, 0, 120)
    assert store.queue_claim("q", 30) == ("first", {"n": 1})
    assert store.queue_claim("q", 30) == ("second", {"n": 2})
    assert store.queue_claim("q", 30) is None
    store.queue_done("q", "first")
    store.queue_done("q", "missing")
    assert store.queue_claim("other", 30) is None


def test_queue_gives_an_item_back_when_its_lease_ends(store):
    store.queue_push("q", "item", {"attempt": 1}, 0, 120)
    assert store.queue_claim("q", 1) == ("item", {"attempt": 1})
    assert store.queue_claim("q", 1) is None
    time.sleep(1.1)
    assert store.queue_claim("q", 30) == ("item", {"attempt": 1})
    # Pushed again (a retry): a new value and a new due time.
    store.queue_push("q", "item", {"attempt": 2}, 1, 120)
    assert store.queue_claim("q", 30) is None
    time.sleep(1.1)
    assert store.queue_claim("q", 30) == ("item", {"attempt": 2})
    store.queue_done("q", "item")
    time.sleep(1.1)
    assert store.queue_claim("q", 1) is None


def test_queue_forgets_an_item_after_its_lifetime(store):
    store.queue_push("q", "old", {}, 0, 1)
    time.sleep(1.1)
    assert store.queue_claim("q", 30) is None


def test_queue_push_checks_delay_and_lifetime(store):
    with pytest.raises(ValueError):
        store.queue_push("q", "x", {}, -1, 60)
    with pytest.raises(ValueError):
        store.queue_push("q", "x", {}, 0, 0)


def _claim_all(store: Store, barrier) -> list[str]:
    barrier.wait()
    claimed = []
    while (found := store.queue_claim("jobs", 60)) is not None:
        claimed.append(found[0])
    return claimed


def test_queue_claims_each_item_once_across_processes(store, backend):
    items = [f"job-{i}" for i in range(40)]
    for item in items:
        store.queue_push("jobs", item, {}, 0, 120)
    claims = _in_processes(backend, _claim_all)
    flat = [item for claimed in claims for item in claimed]
    assert sorted(flat) == sorted(items)


# Embedded backend only.


def test_embedded_store_purges_expired_rows_on_write(tmp_path):
    path = str(tmp_path / "store.sqlite3")
    with closing(EmbeddedStore(path)) as first:
        first.put("old", {}, 1)
    time.sleep(1.1)
    # A new instance (a restarted worker) purges on its first write.
    with closing(EmbeddedStore(path)) as second:
        second.put("new", {}, 60)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT key FROM entries").fetchall() == [("new",)]
