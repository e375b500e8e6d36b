"""SSO sessions on a public computer: an idle limit besides the absolute
one, restarted by use without a store write on every request."""

from __future__ import annotations

import pytest

from idp import sessions
from idp.sessions import create_session, load_session, save_session, touch_session
from idp.store.embedded import EmbeddedStore


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(1_800_000_000)
    monkeypatch.setattr(sessions, "epoch", clock)
    return clock


@pytest.fixture
def store(tmp_path) -> EmbeddedStore:
    return EmbeddedStore(str(tmp_path / "store.sqlite3"))


class CountingStore:
    """Counts writes to the wrapped store."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store, self.puts = store, 0

    def put(self, key, value, ttl):
        self.puts += 1
        self.store.put(key, value, ttl)

    def replace(self, key, value, ttl):
        self.puts += 1
        return self.store.replace(key, value, ttl)

    def get(self, key):
        return self.store.get(key)

    def map_put(self, key, field, value, ttl):
        self.store.map_put(key, field, value, ttl)

    def queue_push(self, queue, item, value, delay, ttl):
        self.store.queue_push(queue, item, value, delay, ttl)


def test_public_session_ends_after_the_idle_limit(clock, store):
    session = create_session(store, 7, ["pwd"], 28800, idle_ttl=900, public=True)
    assert session.public and session.ends_at() == clock.now + 900
    clock.now += 899
    assert load_session(store, session.handle) is not None
    clock.now += 1
    assert load_session(store, session.handle) is None


def test_use_restarts_the_idle_clock_at_most_once_per_tenth(clock, store):
    counting = CountingStore(store)
    session = create_session(counting, 7, ["pwd"], 28800, idle_ttl=900, public=True)
    start, writes = clock.now, counting.puts
    clock.now += 89
    touch_session(counting, load_session(counting, session.handle))
    assert counting.puts == writes  # less than a tenth of the limit: no write
    clock.now += 1
    touch_session(counting, load_session(counting, session.handle))
    assert counting.puts == writes + 1
    clock.now = start + 900 + 89
    assert load_session(counting, session.handle) is not None
    clock.now = start + 90 + 900
    assert load_session(counting, session.handle) is None


def test_the_absolute_limit_still_holds(clock, store):
    session = create_session(store, 7, ["pwd"], 1000, idle_ttl=900)
    for _ in range(12):
        clock.now += 100
        used = load_session(store, session.handle)
        if used is None:
            break
        touch_session(store, used)
    assert clock.now == session.expires_at
    assert used is None


def test_other_sessions_have_no_idle_limit(clock, store):
    session = create_session(store, 7, ["pwd"], 28800)
    assert not session.public and session.ends_at() == session.expires_at
    clock.now += 28799
    touch_session(store, load_session(store, session.handle))
    assert load_session(store, session.handle) is not None


def test_a_step_up_does_not_extend_an_idle_session(clock, store):
    session = create_session(store, 7, ["pwd"], 28800, idle_ttl=900, public=True)
    clock.now += 800
    session.amr = ["pwd", "sms", "mfa"]
    save_session(store, session)
    clock.now += 100
    assert load_session(store, session.handle) is None


def test_sessions_stored_before_the_idle_limit_load(clock, store):
    store.put(sessions._key("old-handle"), {
        "sid": "s", "account_id": 7, "auth_time": clock.now, "amr": ["pwd"],
        "expires_at": clock.now + 60, "clients": [], "generation": 0}, 60)
    old = load_session(store, "old-handle")
    assert old is not None and not old.public and old.ends_at() == clock.now + 60
