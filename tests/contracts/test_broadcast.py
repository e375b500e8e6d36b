"""The Redis store's broadcast (:class:`~idp.store.base.Broadcasting`):
``publish`` stores a value and returns once every watching process was told
of it; ``watch`` tells a watcher from a thread of its own, says when its
subscription drops, and catches up on what it missed when it comes back.

Run when ``IDP_TEST_REDIS_URL`` names a database the tests may write to.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
import redis

from idp.store import redis as redis_store
from idp.store.base import Broadcasting
from idp.store.embedded import EmbeddedStore
from idp.store.redis import RedisStore

REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="set IDP_TEST_REDIS_URL to test Redis")
KEY = "generation"


class Recorder:
    """A watcher that keeps what it is told."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.values: list[dict | None] = []
        self.events: list[str] = []
        self.live = threading.Event()
        self.confirmations = threading.Event()
        self.confirmed_until = 0.0
        self._hold = hold

    def watching(self, value: dict | None) -> None:
        self.events.append("watching")
        self.values.append(value)
        self.live.set()

    def published(self, value: dict) -> None:
        if self._hold is not None:
            self._hold.wait(5)
        self.events.append("published")
        self.values.append(value)

    def confirmed(self, until: float) -> None:
        self.confirmed_until = until
        self.confirmations.set()

    def lost(self) -> None:
        self.events.append("lost")
        self.live.clear()


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def stores(prefix) -> Iterator[list[RedisStore]]:
    """Three stores on one prefix: three processes of one deployment."""
    opened = [RedisStore(REDIS_URL, prefix) for _ in range(3)]
    yield opened
    for store in opened:
        store.close()


def _watching(store: RedisStore, watcher: Recorder) -> Recorder:
    store.watch(KEY, watcher)
    assert watcher.live.wait(10), "the subscription did not come up"
    return watcher


def test_only_the_redis_store_broadcasts(tmp_path, stores):
    assert isinstance(stores[0], Broadcasting)
    assert not isinstance(EmbeddedStore(str(tmp_path / "s.sqlite3")), Broadcasting)


def test_publish_returns_once_every_watcher_was_told(stores):
    publisher, *others = stores
    watchers = [_watching(store, Recorder()) for store in others]
    assert watchers[0].values == [None]  # nothing stored before the first publication
    assert publisher.publish(KEY, {"generation": "g1"}, 60) is True
    # No waiting here: publish came back only after both were told.
    assert [w.values[-1] for w in watchers] == [{"generation": "g1"}] * 2
    assert publisher.get(KEY) == {"generation": "g1"}
    assert publisher.ttl(KEY) <= 60


def test_a_watcher_starting_late_reads_the_current_value(stores):
    stores[0].publish(KEY, {"generation": "before"}, 60)
    watcher = _watching(stores[1], Recorder())
    assert watcher.values == [{"generation": "before"}]


def test_publish_without_watchers_stores_and_returns(stores):
    assert stores[0].publish(KEY, {"generation": "alone"}, 60) is True
    assert stores[1].get(KEY) == {"generation": "alone"}


def test_a_watcher_that_is_not_told_in_time_makes_publish_say_so(stores):
    hold = threading.Event()
    watcher = _watching(stores[1], Recorder(hold))
    started = time.monotonic()
    assert stores[0].publish(KEY, {"generation": "slow"}, 60, wait=0.3) is False
    assert 0.3 <= time.monotonic() - started < 3
    assert stores[0].get(KEY) == {"generation": "slow"}  # stored anyway
    hold.set()
    _until(lambda: watcher.values[-1] == {"generation": "slow"})


def test_a_dropped_subscription_is_said_and_what_was_missed_is_read_back(stores, prefix):
    watcher = _watching(stores[1], Recorder())
    with closing(redis.Redis.from_url(REDIS_URL)) as admin:
        # What an outage of the connection looks like from the server side.
        admin.client_kill_filter(_type="pubsub")
        _until(lambda: "lost" in watcher.events)
        # Published while the watcher was away: it cannot hear it, but reads it back.
        admin.set(prefix + KEY, '{"generation": "missed"}')
    _until(lambda: watcher.live.is_set())
    assert watcher.events[-2:] == ["lost", "watching"]
    assert watcher.values[-1] == {"generation": "missed"}
    assert stores[0].publish(KEY, {"generation": "after"}, 60) is True
    assert watcher.values[-1] == {"generation": "after"}


def test_a_malformed_message_restarts_the_subscription(stores, prefix):
    watcher = _watching(stores[1], Recorder())
    with closing(redis.Redis.from_url(REDIS_URL)) as admin:
        admin.publish(prefix + KEY, "not json")
    _until(lambda: watcher.events[-2:] == ["lost", "watching"])


class RecordingEvent(threading.Event):
    """The store's closing event, keeping each wait's timeout: the pauses
    between subscriptions."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(timeout)


def test_the_back_off_starts_anew_after_a_subscription_that_came_up(stores, prefix):
    closed = stores[1]._closed = RecordingEvent()
    watcher = _watching(stores[1], Recorder())
    with closing(redis.Redis.from_url(REDIS_URL)) as admin:
        for drops in range(1, 4):
            admin.publish(prefix + KEY, "not json")
            _until(lambda drops=drops: watcher.events.count("watching") == drops + 1)
    assert closed.waits == [redis_store._RETRY_FIRST] * 3


def test_a_subscription_that_never_works_backs_off(stores, prefix):
    """A subscription whose value cannot be read (here the key holds a list;
    an ACL refusing GET does the same) fails each time after Redis confirmed
    it: the waits between attempts grow, never hammering Redis."""
    with closing(redis.Redis.from_url(REDIS_URL)) as admin:
        admin.rpush(prefix + KEY, "not a value")
    closed = stores[1]._closed = RecordingEvent()
    watcher = Recorder()
    stores[1].watch(KEY, watcher)
    _until(lambda: len(closed.waits) >= 4)
    first = redis_store._RETRY_FIRST
    assert closed.waits[:4] == [first, first * 2, first * 4, first * 8]


def _watch_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == f"idp-watch-{KEY}"}


def test_the_thread_ends_with_its_watcher_and_with_the_store(stores):
    before = _watch_threads()
    watcher = _watching(stores[1], Recorder())
    (first,) = _watch_threads() - before
    del watcher
    gc.collect()
    first.join(5)
    assert not first.is_alive()
    kept = _watching(stores[1], Recorder())
    (second,) = _watch_threads() - before
    stores[1].close()
    second.join(5)
    assert not second.is_alive() and kept.events[-1] == "lost"


def test_answered_pings_keep_confirming_the_watcher(stores):
    watcher = _watching(stores[1], Recorder())
    assert watcher.confirmations.wait(5)
    first = watcher.confirmed_until
    _until(lambda: watcher.confirmed_until > first)
    assert watcher.confirmed_until <= time.monotonic() + redis_store._TRUST


def test_a_message_too_deep_for_json_restarts_the_subscription(stores, prefix):
    watcher = _watching(stores[1], Recorder())
    with closing(redis.Redis.from_url(REDIS_URL)) as admin:
        admin.publish(prefix + KEY, "[" * 200_000)  # RecursionError, not ValueError
    _until(lambda: watcher.events[-2:] == ["lost", "watching"])
    assert stores[0].publish(KEY, {"generation": "after"}, 60) is True
    assert watcher.values[-1] == {"generation": "after"}


class SilentBreak:
    """A TCP relay to Redis on 127.0.0.1 that can break the subscribing
    connection without a word: Redis loses the subscriber, while the
    client's side stays open and hears nothing (a failover, a NAT entry
    timed out, a host gone)."""

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._links: list[dict] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            link = {"down": down, "up": socket.create_connection(("127.0.0.1", self._upstream))}
            self._links.append(link)
            for source, sink, upward in ((down, link["up"], True), (link["up"], down, False)):
                threading.Thread(target=self._pump, args=(source, sink, link, upward),
                                 daemon=True).start()

    @staticmethod
    def _pump(source, sink, link, upward) -> None:
        try:
            while data := source.recv(65536):
                if upward and b"SUBSCRIBE" in data:
                    link["subscriber"] = True
                if not link.get("silent"):
                    sink.sendall(data)
        except OSError:
            pass

    def break_subscribers(self) -> None:
        for link in self._links:
            if link.get("subscriber") and not link.get("silent"):
                link["silent"] = True
                link["up"].shutdown(socket.SHUT_RDWR)  # a FIN to Redis, nothing to the client
                link["up"].close()

    def close(self) -> None:
        self._listener.close()
        for link in self._links:
            for end in ("down", "up"):
                try:
                    link[end].shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already shut
                link[end].close()


def test_a_silently_broken_subscription_is_not_relied_on_for_long(prefix, stores, monkeypatch):
    """Found by the attack on issue 9: nothing noticed a half-open
    subscription, so a worker served a changed client for the whole of its
    cache lifetime. The watcher now stops being confirmed, so lookups go
    back to reading within the trust (half a second), and the subscription
    is dropped and made again once a PING goes unanswered."""
    monkeypatch.setattr(redis_store, "_GIVE_UP", 1.0)
    relay = SilentBreak(redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs["port"])
    url = REDIS_URL.replace(REDIS_URL.split("//")[1].split("/")[0], f"127.0.0.1:{relay.port}")
    store = RedisStore(url, prefix)
    try:
        watcher = _watching(store, Recorder())
        assert watcher.confirmations.wait(5)
        relay.break_subscribers()
        broken_at = time.monotonic()
        with closing(redis.Redis.from_url(REDIS_URL)) as admin:
            _until(lambda: admin.pubsub_numsub(prefix + KEY)[0][1] == 0)
        # The publication reaches nobody, so it waits for nobody.
        assert stores[0].publish(KEY, {"generation": "unheard"}, 60) is True
        assert watcher.values[-1] != {"generation": "unheard"}
        time.sleep(redis_store._TRUST + 0.2)
        assert watcher.confirmed_until <= broken_at + redis_store._TRUST
        _until(lambda: watcher.events[-2:] == ["lost", "watching"])
        assert watcher.values[-1] == {"generation": "unheard"}
        assert watcher.confirmations.wait(5)
    finally:
        store.close()
        relay.close()
