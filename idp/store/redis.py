"""Redis backend of the ephemeral state store.

Use it when the provider runs on more than one machine: every worker of every
machine sees the same state. Expiry is Redis's own key expiry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
from redis.exceptions import RedisError

from idp.store.base import StoreError, validate_ttl

# INCR and EXPIRE must run as one step: a failure between the two would leave
# a counter that never expires, i.e. a permanent lockout.
_INCR_FIXED_WINDOW = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('TTL', KEYS[1]) == -1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
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
        self._client = redis.Redis.from_url(url)
        self._incr_script = self._client.register_script(_INCR_FIXED_WINDOW)

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

    def close(self) -> None:
        """Disconnect the connection pool (a later call reconnects)."""
        self._client.close()


def _encode(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        # redis-py messages name host and port but never the password, unlike the URL.
        raise StoreError(f"redis store error: {exc}") from exc
