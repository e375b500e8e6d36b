"""Redis backend of the ephemeral state store.

Use it when the provider runs on more than one machine: every worker of every
machine sees the same state. Expiry is Redis's own key expiry.

A process keeps the values it read of the keys under the store's ``kept``
prefixes (revocation markers, accounts' versions) while its subscription to
the store's change channel is proven live, and reads them again only once a
write has told it they changed (:class:`~idp.store.kept.PushedKeeps`): a
request that checks a token's revocation costs no round trip.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import redis
from redis.exceptions import RedisError

from idp.store.base import StoreError, Watcher, validate_ttl
from idp.store.kept import PushedKeeps

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
#: The channel (and key) on which writes of kept keys name them.
_CHANGES = "kept:changes"
#: Seconds a write of kept keys waits for every subscribed process to have
#: dropped them; longer than :data:`_TRUST`, so that when it returns every
#: process either dropped them or relies on nothing it kept.
_TELL_WAIT = 2.0
#: Seconds a process relies on a kept value at most before reading it
#: again: the bound on missing a write made around the store's telling
#: (by an older version of the provider during a rolling upgrade, or by
#: hand), which no subscription reports.
_KEPT_SECONDS = 5.0

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


# The server's clock in Unix milliseconds, as ``now``: every script of
# maps and queues reads expiries by it, whatever the clients' clocks say.
_NOW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""
# Map fields are "<expiry, Unix ms>:<JSON>" in a hash, by the server's
# clock; the hash lives as long as its longest field.
_MAP_PUT = _NOW + """
local ttl = tonumber(ARGV[3]) * 1000
redis.call('HSET', KEYS[1], ARGV[1], (now + ttl) .. ':' .. ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
end
"""
_MAP_GET = _NOW + """
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
    local raw = all[i + 1]
    local at = string.find(raw, ':', 1, true)
    if tonumber(string.sub(raw, 1, at - 1)) > now then
        table.insert(live, all[i])
        table.insert(live, string.sub(raw, at + 1))
    else
        redis.call('HDEL', KEYS[1], all[i])
    end
end
return live
"""
# A queue is a sorted set of item ids scored by due time (Unix ms) and a
# hash of their values, as map fields are.
_QUEUE_PUSH = _NOW + """
local ttl = tonumber(ARGV[4]) * 1000
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]) * 1000, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], (now + ttl) .. ':' .. ARGV[2])
for i = 1, 2 do
    if redis.call('PTTL', KEYS[i]) < ttl then
        redis.call('PEXPIRE', KEYS[i], ttl)
    end
end
"""
_QUEUE_CLAIM = _NOW + """
while true do
    local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
    if #due == 0 then
        return false
    end
    local item = due[1]
    local raw = redis.call('HGET', KEYS[2], item)
    local at = raw and string.find(raw, ':', 1, true)
    if raw and tonumber(string.sub(raw, 1, at - 1)) > now then
        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]) * 1000, item)
        return {item, string.sub(raw, at + 1)}
    end
    redis.call('ZREM', KEYS[1], item)
    redis.call('HDEL', KEYS[2], item)
end
"""


class RedisStore:
    """A :class:`~idp.store.base.Store` kept in Redis (server 6.2 or later, for GETDEL).

    :param url: a redis-py URL such as ``redis://host:6379/0``,
        ``rediss://user:password@host:6380/1`` or
        ``unix:///run/redis.sock?db=0``; query parameters tune the connection
        (e.g. ``socket_timeout=2``).
    :param prefix: prepended to every key, so several applications or test
        runs can share one database.
    :param kept: key prefixes whose values each process keeps (module
        docstring); every write of such a key waits until every process
        that keeps values has dropped it (about a millisecond; at most
        :data:`_TELL_WAIT` seconds), so write them only through a store
        given the same ``kept``, never around it.

    Each instance owns one connection pool. Nothing connects until the first
    command, so constructing a store never fails because Redis is down; call
    :meth:`ping` to check. redis-py pools are fork-safe, so an instance
    created before the server forks its workers is fine to use in them.

    Every method raises :class:`~idp.store.base.StoreError` when Redis is
    unreachable or rejects a command.
    """

    def __init__(self, url: str, prefix: str = "idp:", kept: Sequence[str] = ()) -> None:
        self._prefix = prefix
        self._url = url
        self._client = redis.Redis.from_url(url)
        self._incr_script = self._client.register_script(_INCR_FIXED_WINDOW)
        self._counted_script = self._client.register_script(_PUT_MANY_COUNTED)
        self._map_put_script = self._client.register_script(_MAP_PUT)
        self._map_get_script = self._client.register_script(_MAP_GET)
        self._queue_push_script = self._client.register_script(_QUEUE_PUSH)
        self._queue_claim_script = self._client.register_script(_QUEUE_CLAIM)
        self._closed = threading.Event()
        self._keeps = PushedKeeps(kept)
        self._keeps_pid: int | None = None  # the process whose thread follows the changes
        self._keeps_lock = threading.Lock()

    def put(self, key: str, value: dict, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any entry."""
        validate_ttl(ttl)
        self._write([key], lambda client: client.set(self._prefix + key, _encode(value), ex=ttl))

    def put_many(self, entries: Sequence[tuple[str, dict, int]]) -> None:
        """Store each ``(key, value, ttl)``, replacing any entry, in one
        ``MULTI``/``EXEC`` pipeline."""
        for _key, _value, ttl in entries:
            validate_ttl(ttl)

        def put_all(pipe: redis.Redis) -> None:
            for key, value, ttl in entries:
                pipe.set(self._prefix + key, _encode(value), ex=ttl)

        self._transaction([key for key, _value, _ttl in entries], put_all)

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
        return int(self._write([counter, *(key for key, _v, _t in entries)],
                               lambda client: self._counted_script(keys=keys, args=args,
                                                                   client=client)))

    def add(self, key: str, value: dict, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds unless ``key`` exists; True if stored."""
        validate_ttl(ttl)
        return bool(self._write([key], lambda client: client.set(
            self._prefix + key, _encode(value), ex=ttl, nx=True)))

    def replace(self, key: str, value: dict, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds if ``key`` exists (``SET XX``); True if replaced."""
        validate_ttl(ttl)
        return bool(self._write([key], lambda client: client.set(
            self._prefix + key, _encode(value), ex=ttl, xx=True)))

    def get(self, key: str) -> dict | None:
        """The value under ``key``, or None if absent or expired; a kept
        key's value may come from an earlier read (module docstring)."""
        if self._keeps.covers(key):
            return self._read_kept([key], {key})[0]
        with _errors():
            raw = self._client.get(self._prefix + key)
        return _decode(raw)

    def get_many(self, keys: Sequence[str]) -> list[dict | None]:
        """The values under ``keys`` in their order (None where absent or
        expired): those of kept keys from earlier reads when they are kept,
        the others read by one ``MGET``."""
        if not keys:
            return []
        covered = {key for key in keys if self._keeps.covers(key)}
        if covered:
            return self._read_kept(keys, covered)
        with _errors():
            raw = self._client.mget([self._prefix + key for key in keys])
        return [_decode(item) for item in raw]

    def _read_kept(self, keys: Sequence[str], covered: set[str]) -> list[dict | None]:
        """``keys`` read as :meth:`get_many` says, ``covered`` being those
        of them under a kept prefix: the kept ones from this process's
        keeps, the rest in one round trip, with the remaining lifetime
        (``PTTL``) of each covered one so that it is never kept past its
        expiry (nor past :data:`_KEPT_SECONDS`, :func:`_expires_at`)."""
        epoch = self._kept_epoch()
        texts: dict[str, bytes | None] = {}
        if epoch is not None:
            now = time.monotonic()
            for key in covered:
                hit, text = self._keeps.lookup(key, now)
                if hit:
                    texts[key] = text
        missing = list(dict.fromkeys(key for key in keys if key not in texts))
        if missing:
            read = [key for key in missing if key in covered] if epoch is not None else []
            started = time.monotonic()
            with _errors():
                pipe = self._client.pipeline(transaction=False)
                pipe.mget([self._prefix + key for key in missing])
                for key in read:
                    pipe.pttl(self._prefix + key)
                raw, *lifetimes = pipe.execute()
            texts.update(zip(missing, raw, strict=True))
            if epoch is not None and read:
                self._keeps.keep(epoch, [
                    (key, texts[key], expires_at) for key, millis in zip(read, lifetimes,
                                                                         strict=True)
                    if (expires_at := _expires_at(texts[key], millis, started)) is not None])
        return [_decode(texts[key]) for key in keys]

    def _kept_epoch(self) -> int | None:
        """The epoch of this process's keeps while they may be relied on
        (:meth:`~idp.store.kept.PushedKeeps.trusted`); in a process that has
        not followed the changes yet (a new one, or a fork's child, whose
        keeps came from its parent), start following them first."""
        if self._keeps_pid != os.getpid():
            with self._keeps_lock:
                if self._keeps_pid != os.getpid():
                    self._keeps.reset()
                    self._keeps_pid = os.getpid()
                    self.watch(_CHANGES, self._keeps)
        return self._keeps.trusted()

    def _write(self, keys: Sequence[str], command: Callable[[redis.Redis], object]) -> object:
        """Run ``command`` (which sends one command, or a transaction of
        its own, to the client it is given) and return its answer; when
        ``keys`` include kept ones, in :meth:`_transaction` instead.

        :raises StoreError: Redis is unreachable or rejected a command.
        """
        if not any(self._keeps.covers(key) for key in keys):
            with _errors():
                return command(self._client)
        return self._transaction(keys, command)[0]

    def _transaction(self, keys: Sequence[str], queue: Callable[[redis.Redis], object],
                     ) -> list:
        """Run the commands ``queue`` sends to the pipeline it is given in
        one ``MULTI``/``EXEC``, with a message on the change channel naming
        the kept ones among ``keys`` (if any); then drop those here and wait
        (up to :data:`_TELL_WAIT` seconds) until every process that received
        the message has dropped them.

        :returns: the answers of the queued commands, in order.
        :raises StoreError: Redis is unreachable or rejected a command.
        """
        changed = sorted({key for key in keys if self._keeps.covers(key)})
        message = secrets.token_hex(8) if changed else ""
        with _errors():
            pipe = self._client.pipeline(transaction=True)
            queue(pipe)
            if changed:
                _tell(pipe, self._prefix + _CHANGES, message, {"keys": changed})
            answers = pipe.execute()
        if changed:
            self._keeps.drop(changed)
            reached = _reached(answers)
            with _errors():
                told = self._told(_CHANGES, message, reached, _TELL_WAIT)
            if not told:
                log.warning("a change of %s was not confirmed by every process within %s s; "
                            "those that did not confirm it rely on none of their kept values",
                            ", ".join(changed), _TELL_WAIT)
        return answers

    def take(self, key: str) -> dict | None:
        """Get and delete ``key`` in one command; None if absent or expired."""
        return _decode(self._write([key], lambda client: client.getdel(self._prefix + key)))

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._write([key], lambda client: client.delete(self._prefix + key))

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        """Increment the fixed-window counter ``key`` (window of ``ttl`` seconds).

        :returns: the new count; 1 means a new window was started.
        """
        validate_ttl(ttl)
        return int(self._write([key], lambda client: self._incr_script(
            keys=[self._prefix + key], args=[ttl, amount], client=client)))

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

    def map_put(self, key: str, field: str, value: dict, ttl: int) -> None:
        """Store ``field`` of the map ``key`` for ``ttl`` seconds
        (:meth:`~idp.store.base.Store.map_put`): one ``HSET`` in a script."""
        validate_ttl(ttl)
        with _errors():
            self._map_put_script(keys=[self._prefix + key], args=[field, _encode(value), ttl])

    def map_delete(self, key: str, field: str) -> None:
        """Remove ``field`` from the map ``key`` (``HDEL``)."""
        with _errors():
            self._client.hdel(self._prefix + key, field)

    def map_get(self, key: str) -> dict[str, dict]:
        """The live fields of the map ``key``; expired ones are removed."""
        with _errors():
            flat = self._map_get_script(keys=[self._prefix + key])
        return {flat[i].decode(): json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}

    def queue_push(self, queue: str, item: str, value: dict, delay: int, ttl: int) -> None:
        """Schedule ``item`` in ``queue`` (:meth:`~idp.store.base.Store.queue_push`)."""
        validate_ttl(ttl)
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        with _errors():
            self._queue_push_script(keys=self._queue_keys(queue),
                                    args=[item, _encode(value), delay, ttl])

    def queue_claim(self, queue: str, lease: int) -> tuple[str, dict] | None:
        """Take the longest-due item of ``queue`` for ``lease`` seconds, in
        one script (:meth:`~idp.store.base.Store.queue_claim`)."""
        validate_ttl(lease)
        with _errors():
            found = self._queue_claim_script(keys=self._queue_keys(queue), args=[lease])
        return None if not found else (found[0].decode(), json.loads(found[1]))

    def queue_done(self, queue: str, item: str) -> None:
        """Remove ``item`` from ``queue``."""
        keys = self._queue_keys(queue)
        with _errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.zrem(keys[0], item)
            pipe.hdel(keys[1], item)
            pipe.execute()

    def _queue_keys(self, queue: str) -> list[str]:
        return [self._prefix + queue, self._prefix + queue + ":items"]

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

        def set_and_publish(pipe: redis.Redis) -> None:
            pipe.set(self._prefix + key, _encode(value), ex=ttl)
            _tell(pipe, self._prefix + key, message, value)

        reached = _reached(self._transaction([key], set_and_publish))
        with _errors():
            return self._told(key, message, reached, wait)

    def _told(self, key: str, message: str, reached: int, wait: float) -> bool:
        """Wait until ``reached`` watchers of ``key`` have counted
        ``message`` told (each increments ``<key>:told:<message>``, see
        :meth:`_Subscription._listen`), polling with a pause that doubles
        from 0.5 ms.

        :returns: False if fewer did within ``wait`` seconds.
        :raises RedisError: Redis is unreachable.
        """
        # Read around the keeps: the watchers count without telling.
        told = f"{self._prefix}{key}:told:{message}"
        deadline, pause = time.monotonic() + wait, 0.0005
        while int(self._client.get(told) or 0) < reached:
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
        answered after the current value was read). The thread does not
        hold the store, so a watcher the store owns ends with it."""
        subscription = _Subscription(self._url, self._prefix, self._client, self._incr_script,
                                     self._closed, key, weakref.ref(watcher))
        threading.Thread(target=subscription.run, name=f"idp-watch-{key}", daemon=True).start()

    def close(self) -> None:
        """Stop the watching threads (within :data:`_POLL` seconds) and
        disconnect the connection pool (a later call reconnects)."""
        self._closed.set()
        self._client.close()


class _Subscription:
    """One watcher's subscription to one key's channel, run by a thread of
    its own (:meth:`RedisStore.watch`); it holds what it needs of the store,
    not the store."""

    def __init__(self, url: str, prefix: str, client: redis.Redis, incr: Callable[..., object],
                 closed: threading.Event, key: str, watcher: weakref.ref[Watcher]) -> None:
        self._url, self._prefix, self._client, self._incr = url, prefix, client, incr
        self._closed, self._key, self._watcher = closed, key, watcher

    def run(self) -> None:
        """Subscribe, and again after each failure, until the store is
        closed or the watcher collected."""
        key, watcher = self._key, self._watcher
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
                target.watching(_decode(self._client.get(self._prefix + key)))
            elif kind == b"message":
                told = json.loads(reply[2])
                target.published(told["value"])
                self._incr(keys=[f"{self._prefix}{key}:told:{told['message']}"],
                           args=[_TOLD_TTL, 1])
            elif kind == b"pong" and pinged is not None:
                # Redis answers in order: whatever was published before the
                # PING reached it has been read, and told, above.
                target.confirmed(pinged + _TRUST)
                pinged = None
                if not subscribed:
                    subscribed.append(True)
            del target  # never held between replies: the watcher may be collected


def _lose(watcher: weakref.ref[Watcher]) -> None:
    target = watcher()
    if target is not None:
        target.lost()


def _tell(pipe: redis.Redis, channel: str, message: str, value: dict) -> None:
    """Queue the publication of ``value`` on ``channel`` as ``message``, and
    the count of the channel's own subscribers (:func:`_reached`)."""
    pipe.publish(channel, _encode({"message": message, "value": value}))
    pipe.pubsub_numsub(channel)


def _reached(answers: list) -> int:
    """The watchers a publication queued by :func:`_tell` reached, popped
    with its two answers from the end of ``answers``: the channel's own
    subscribers (``PUBSUB NUMSUB``, in the same transaction), not
    ``PUBLISH``'s count, which also counts pattern subscribers (a
    monitoring client's ``PSUBSCRIBE *``) that never confirm and would
    make every publication wait out its time."""
    ((_channel, subscribers),) = answers.pop()
    answers.pop()
    return int(subscribers)


def _decode(raw: bytes | None) -> dict | None:
    return None if raw is None else json.loads(raw)


def _expires_at(text: bytes | None, millis: int, started: float) -> float | None:
    """Until when a value read at ``started`` (``time.monotonic()``) with
    ``PTTL`` ``millis`` may be kept: :data:`_KEPT_SECONDS` at most, and
    never past its expiry in Redis; None when the two answers disagree
    (the key changed or expired between them), so that nothing is kept."""
    longest = started + _KEPT_SECONDS
    if text is None:
        return longest if millis == -2 else None
    if millis == -1:  # written around the store without an expiry
        return longest
    return None if millis < 0 else min(longest, started + millis / 1000)


def _encode(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        # redis-py messages name host and port but never the password, unlike the URL.
        raise StoreError(f"redis store error: {exc}") from exc
