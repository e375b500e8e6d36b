"""Redis backend of the ephemeral state store.

Use it when the provider runs on more than one machine: every worker of every
machine sees the same state. Expiry is Redis's own key expiry.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
from redis.exceptions import RedisError

from idp.store.base import StoreError, Watcher, validate_ttl

log = logging.getLogger(__name__)

#: Lifetime of a publication's count of watchers told, seconds.
_TOLD_TTL = 60
#: First wait before subscribing again after a failure, seconds; it doubles
#: with each failure in a row, up to :data:`_POLL`.
_RETRY_FIRST = 0.05
#: Longest wait before subscribing again after a failure, seconds.
_POLL = 1.0
#: Seconds between two PINGs on a subscription (each proves it live).
_PING_EVERY = 0.1
#: Seconds an answered PING lets a watcher trust that it has been told of
#: every publication: the longest a subscription that broke silently (a
#: half-open connection) goes unnoticed by the requests.
_TRUST = 0.5
#: Seconds without an answer to a PING before the subscription is dropped.
_GIVE_UP = 5.0

# INCR and EXPIRE must run as one step: a failure between the two would leave
# a counter that never expires, i.e. a permanent lockout.
_INCR_FIXED_WINDOW = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('TTL', KEYS[1]) == -1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
# The same count, then the entries (KEYS[2..], each value and ttl in ARGV)
# only within the limit: a code is never stored beyond its session's rate.
_PUT_MANY_COUNTED = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) == -1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
if count <= tonumber(ARGV[2]) then
    for i = 2, #KEYS do
        redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'EX', ARGV[2 * i])
    end
end
return count
"""


class RedisStore:
    """A :class:`~idp.store.base.Store` kept in Redis (server 6.2 or later, for GETDEL).

    :param url: a redis-py URL such as ``redis://host:6379/0``,
        ``rediss://user:password@host:6380/1`` or
        ``unix:///run/redis.sock?db=0``; query parameters tune the connection
        (e.g. ``socket_timeout=2``).
    :param prefix: prepended to every key, so several applications or test
        runs can share one database.

    Each instance owns one connection pool. Nothing connects until the first
    command, so constructing a store never fails because Redis is down; call
    :meth:`ping` to check. redis-py pools are fork-safe, so an instance
    created before the server forks its workers is fine to use in them.

    Every method raises :class:`~idp.store.base.StoreError` when Redis is
    unreachable or rejects a command.
    """

    def __init__(self, url: str, prefix: str = "idp:") -> None:
        self._prefix = prefix
        self._url = url
        self._client = redis.Redis.from_url(url)
        self._incr_script = self._client.register_script(_INCR_FIXED_WINDOW)
        self._counted_script = self._client.register_script(_PUT_MANY_COUNTED)
        self._closed = threading.Event()

    def put(self, key: str, value: dict, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any entry."""
        validate_ttl(ttl)
        with _errors():
            self._client.set(self._prefix + key, _encode(value), ex=ttl)

    def put_many(self, entries: Sequence[tuple[str, dict, int]]) -> None:
        """Store each ``(key, value, ttl)``, replacing any entry, in one
        ``MULTI``/``EXEC`` pipeline."""
        for _key, _value, ttl in entries:
            validate_ttl(ttl)
        with _errors():
            pipe = self._client.pipeline(transaction=True)
            for key, value, ttl in entries:
                pipe.set(self._prefix + key, _encode(value), ex=ttl)
            pipe.execute()

    def put_many_counted(self, counter: str, window: int, limit: int,
                         entries: Sequence[tuple[str, dict, int]]) -> int:
        """Count one event under ``counter`` and store ``entries`` if the
        count is at most ``limit``, in one Lua script
        (:meth:`~idp.store.base.Store.put_many_counted`).

        :returns: the count after this call.
        """
        validate_ttl(window)
        args: list[object] = [window, limit]
        for _key, value, ttl in entries:
            validate_ttl(ttl)
            args += [_encode(value), ttl]
        keys = [self._prefix + counter, *(self._prefix + key for key, _v, _t in entries)]
        with _errors():
            return int(self._counted_script(keys=keys, args=args))

    def add(self, key: str, value: dict, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds unless ``key`` exists; True if stored."""
        validate_ttl(ttl)
        with _errors():
            return bool(self._client.set(self._prefix + key, _encode(value), ex=ttl, nx=True))

    def replace(self, key: str, value: dict, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds if ``key`` exists (``SET XX``); True if replaced."""
        validate_ttl(ttl)
        with _errors():
            return bool(self._client.set(self._prefix + key, _encode(value), ex=ttl, xx=True))

    def get(self, key: str) -> dict | None:
        """The value under ``key``, or None if absent or expired."""
        with _errors():
            raw = self._client.get(self._prefix + key)
        return None if raw is None else json.loads(raw)

    def get_many(self, keys: Sequence[str]) -> list[dict | None]:
        """The values under ``keys`` in their order (None where absent or
        expired), read by one ``MGET``."""
        if not keys:
            return []
        with _errors():
            raw = self._client.mget([self._prefix + key for key in keys])
        return [None if item is None else json.loads(item) for item in raw]

    def take(self, key: str) -> dict | None:
        """Get and delete ``key`` in one command; None if absent or expired."""
        with _errors():
            raw = self._client.getdel(self._prefix + key)
        return None if raw is None else json.loads(raw)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        with _errors():
            self._client.delete(self._prefix + key)

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        """Increment the fixed-window counter ``key`` (window of ``ttl`` seconds).

        :returns: the new count; 1 means a new window was started.
        """
        validate_ttl(ttl)
        with _errors():
            return int(self._incr_script(keys=[self._prefix + key], args=[ttl, amount]))

    def counter(self, key: str) -> int:
        """The count of the :meth:`incr` window under ``key``; 0 if absent or expired."""
        value = self.get(key)
        return value if isinstance(value, int) else 0

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires, rounded up; None if absent.

        A key written outside this class without an expiry also gives None.
        """
        with _errors():
            millis = self._client.pttl(self._prefix + key)
        # PTTL answers -2 for a missing key and -1 for a key without expiry.
        if millis < 0:
            return None
        # Whole-second TTL rounds to nearest; round up so a live key never reports 0.
        return -(-millis // 1000)

    def ping(self) -> None:
        """Round-trip to the server; raises StoreError if it is unreachable."""
        with _errors():
            self._client.ping()

    def publish(self, key: str, value: dict, ttl: int, wait: float = 2.0) -> bool:
        """Store ``value`` under ``key`` and ``PUBLISH`` it on the key's
        channel in one ``MULTI``/``EXEC``; then wait until as many watchers
        as ``PUBLISH`` reached have counted themselves told (see
        :class:`~idp.store.base.Broadcasting`).

        :param wait: seconds to wait for the watchers.
        :returns: False if fewer were told within ``wait``.
        :raises StoreError: Redis is unreachable or rejected the commands.
        """
        validate_ttl(ttl)
        message = secrets.token_hex(8)
        told = f"{key}:told:{message}"
        with _errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.set(self._prefix + key, _encode(value), ex=ttl)
            pipe.publish(self._prefix + key, _encode({"message": message, "value": value}))
            reached = int(pipe.execute()[1])
            deadline, pause = time.monotonic() + wait, 0.0005
            while self.counter(told) < reached:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        return True

    def watch(self, key: str, watcher: Watcher) -> None:
        """Subscribe to ``key``'s channel from a daemon thread and tell
        ``watcher`` (held weakly) until it is collected or :meth:`close` is
        called. The subscription is proven live every :data:`_PING_EVERY`
        seconds by a PING on it, each answer confirming the watcher for
        :data:`_TRUST` seconds (:meth:`~idp.store.base.Watcher.confirmed`);
        a connection that fails, or leaves a PING unanswered for
        :data:`_GIVE_UP` seconds, is dropped (``lost``) and subscribed anew
        with back-off up to :data:`_POLL` seconds apart, starting again
        from :data:`_RETRY_FIRST` once a subscription has worked (a PING
        answered after the current value was read)."""
        threading.Thread(target=self._watch, args=(key, weakref.ref(watcher)),
                         name=f"idp-watch-{key}", daemon=True).start()

    def _watch(self, key: str, watcher: weakref.ref[Watcher]) -> None:
        # A connection of its own, outside any pool and never reconnected
        # behind the thread's back (redis-py's PubSub subscribes again by
        # itself after an error, before the error is seen, which hid the
        # publications missed meanwhile and left a subscriber nobody read).
        # RESP2: its subscribed replies are plain arrays (RESP3 sends them
        # as push messages, which the connection hands to a push handler).
        connections = redis.ConnectionPool.from_url(self._url, socket_keepalive=True, protocol=2)
        pause = _RETRY_FIRST
        try:
            while not self._closed.is_set() and watcher() is not None:
                conn = connections.make_connection()
                subscribed: list[bool] = []
                try:
                    self._listen(conn, key, watcher, subscribed)
                except Exception as exc:  # any fault ends this subscription, not the thread
                    _lose(watcher)
                    if subscribed:  # failures in a row only grow the wait
                        pause = _RETRY_FIRST
                    log.warning("watching %s in the store failed, subscribing again in %.2f s: "
                                "%s", key, pause, exc)
                    self._closed.wait(pause)
                    pause = min(pause * 2, _POLL)
                finally:
                    conn.disconnect()
        finally:
            _lose(watcher)
            connections.disconnect()

    def _listen(self, conn: redis.Connection, key: str, watcher: weakref.ref[Watcher],
                subscribed: list[bool]) -> None:
        """Subscribe on ``conn`` and tell ``watcher`` until the store is
        closed or the watcher collected (appending to ``subscribed`` once
        the subscription has worked: the watcher told the current value and
        a PING answered); raises when the subscription fails."""
        conn.connect()
        conn.send_command("SUBSCRIBE", self._prefix + key)
        pinged: float | None = None  # when the unanswered PING was sent
        next_ping = 0.0
        while not self._closed.is_set():
            now = time.monotonic()
            if pinged is None and now >= next_ping:
                conn.send_command("PING")
                pinged, next_ping = now, now + _PING_EVERY
            elif pinged is not None and now - pinged > _GIVE_UP:
                raise ConnectionError(f"no answer to PING in {_GIVE_UP} s")
            if not conn.can_read(timeout=_PING_EVERY):
                if watcher() is None:
                    return
                continue
            reply = conn.read_response()
            target = watcher()
            if target is None:
                return
            kind = reply[0]
            if kind == b"subscribe":
                target.watching(self.get(key))
            elif kind == b"message":
                told = json.loads(reply[2])
                target.published(told["value"])
                self.incr(f"{key}:told:{told['message']}", _TOLD_TTL)
            elif kind == b"pong" and pinged is not None:
                # Redis answers in order: whatever was published before the
                # PING reached it has been read, and told, above.
                target.confirmed(pinged + _TRUST)
                pinged = None
                if not subscribed:
                    subscribed.append(True)
            del target  # never held between replies: the watcher may be collected

    def close(self) -> None:
        """Stop the watching threads (within :data:`_POLL` seconds) and
        disconnect the connection pool (a later call reconnects)."""
        self._closed.set()
        self._client.close()


def _lose(watcher: weakref.ref[Watcher]) -> None:
    target = watcher()
    if target is not None:
        target.lost()


def _encode(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        # redis-py messages name host and port but never the password, unlike the URL.
        raise StoreError(f"redis store error: {exc}") from exc
