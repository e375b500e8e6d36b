"""The ephemeral state store interface shared by every backend.

The store holds short-lived state that must be visible to every worker
process: authorization codes, SSO sessions, rate-limit counters and replay
caches (``jti`` values, nonces). Every entry has an expiry; nothing in the
store is meant to outlive a restart of the backend.

Values are JSON-serialisable dicts and come back as new dicts decoded from
JSON (so tuples come back as lists, and so on). Times to live are whole
seconds, at least 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


class StoreError(Exception):
    """The backend is unreachable or failed to carry out an operation.

    Raised instead of the backend's own exceptions (redis-py errors,
    ``sqlite3`` errors) so callers can handle an outage of either backend the
    same way; the original exception is chained as ``__cause__``.
    """


@runtime_checkable
class Store(Protocol):
    """Key/value storage with per-entry expiry, safe across threads and processes.

    Every method raises :class:`StoreError` when the backend cannot be
    reached, and the methods taking ``ttl`` raise :class:`ValueError` when it
    is not a whole number of seconds >= 1.
    """

    def put(self, key: str, value: dict, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any entry."""

    def put_many(self, entries: Sequence[tuple[str, dict, int]]) -> None:
        """Store each ``(key, value, ttl)`` as :meth:`put` does, in one round
        trip to the backend; all of them or, when it raises, possibly none.

        :param entries: a few entries (the keys of one operation).
        """

    def put_many_counted(self, counter: str, window: int, limit: int,
                         entries: Sequence[tuple[str, dict, int]]) -> int:
        """Count one event in the fixed-window counter ``counter`` (as
        :meth:`incr` with a window of ``window`` seconds) and, only if the
        count is then at most ``limit``, store ``entries`` (as
        :meth:`put_many`): one atomic step and one round trip, for a write
        that a rate limits (an authorization code per SSO session).

        :returns: the count after this call; above ``limit``, nothing was stored.
        """

    def add(self, key: str, value: dict, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds only if ``key`` is absent or expired.

        :returns: True if this call stored the value, False if a live entry
            already existed (which is left untouched). Concurrent callers on
            the same key get True at most once, so this is the primitive for
            replay caches.
        """

    def replace(self, key: str, value: dict, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds only if a live entry is under
        ``key``: an update never brings back what was deleted or expired
        meanwhile (a session ended while a request held a copy of it).

        :returns: True if the entry was replaced, False if there was none.
        """

    def get(self, key: str) -> dict | None:
        """The value stored under ``key``, or None if absent or expired."""

    def get_many(self, keys: Sequence[str]) -> list[dict | None]:
        """The values stored under ``keys``, in their order, each None if
        absent or expired: one round trip to the backend however many keys
        (a request that checks several revocation markers pays for one).

        :param keys: at most a few dozen keys; duplicates are allowed.
        :returns: a list as long as ``keys``.
        """

    def take(self, key: str) -> dict | None:
        """Atomically get and delete ``key``.

        :returns: the value, or None if absent or expired. Among concurrent
            callers in any threads or processes, exactly one gets the value.
        """

    def delete(self, key: str) -> None:
        """Remove ``key``; removing an absent key is not an error."""

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        """Add ``amount`` (default one event; negative to give a reserved
        event back) to the fixed-window counter stored under ``key``.

        The first call (or the first after the window expired) creates the
        counter at ``amount`` expiring in ``ttl`` seconds; later calls change
        it without extending that expiry.

        :returns: the count after this call.
        """

    def counter(self, key: str) -> int:
        """The current count of the :meth:`incr` window under ``key``; 0 if
        absent or expired. Reading does not count."""

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires, rounded up, or None if absent or expired."""

    def ping(self) -> None:
        """Check that the backend is reachable; raises :class:`StoreError` if not."""

    def map_put(self, key: str, field: str, value: dict, ttl: int) -> None:
        """Store ``value`` as ``field`` of the map under ``key`` for ``ttl``
        seconds, replacing that field; the map's other fields keep theirs.
        Concurrent writers of different fields never lose each other's (an
        account's list of sessions, written by each of its logins)."""

    def map_delete(self, key: str, field: str) -> None:
        """Remove ``field`` from the map under ``key``; an absent one is not
        an error."""

    def map_get(self, key: str) -> dict[str, dict]:
        """The live fields of the map under ``key`` (field -> value); empty
        when there are none."""

    def queue_push(self, queue: str, item: str, value: dict, delay: int, ttl: int) -> None:
        """Schedule ``item`` (an id unique in ``queue``) with ``value``, due
        in ``delay`` seconds (0: now), replacing an item of that id. It is
        forgotten ``ttl`` seconds from now whether or not it was done.

        :raises ValueError: ``delay`` negative or ``ttl`` not whole seconds >= 1.
        """

    def queue_claim(self, queue: str, lease: int) -> tuple[str, dict] | None:
        """Take the item of ``queue`` that has been due longest and hide it
        for ``lease`` seconds: a worker that dies holding it gives it back
        to the queue when the lease ends. Among concurrent callers in any
        threads or processes, exactly one gets each due item.

        :returns: ``(item, value)``, or None when nothing is due.
        """

    def queue_done(self, queue: str, item: str) -> None:
        """Remove ``item`` from ``queue`` (delivered, or given up)."""


class Watcher(Protocol):
    """What :meth:`Broadcasting.watch` tells about one key, from a thread of
    its own (each method must be quick and must not raise)."""

    def watching(self, value: dict | None) -> None:
        """The subscription is live (again): from now on every value
        published under the key is told; ``value`` is the key's value read
        after subscribing (None if absent), which the watcher may have
        missed while it was not subscribed. Rely on it only once
        :meth:`confirmed`."""

    def published(self, value: dict) -> None:
        """A new value was published under the key."""

    def confirmed(self, until: float) -> None:
        """Every value published so far has been told: the watcher may rely
        on having been told of every publication until ``until``
        (``time.monotonic()`` seconds) unless confirmed again by then."""

    def lost(self) -> None:
        """The subscription dropped: values published from now on are not
        told until :meth:`watching` is called again."""


@runtime_checkable
class Broadcasting(Protocol):
    """A store that can push a key's new values to every process watching
    it, so that they need not read the key on every request."""

    def publish(self, key: str, value: dict, ttl: int, wait: float = 2.0) -> bool:
        """Store ``value`` under ``key`` as :meth:`Store.put` does and tell
        it to every watcher of ``key`` in every process, then wait until
        each watcher the message reached has been told.

        :param wait: how long to wait for the watchers, seconds.
        :returns: False if some watcher was not told within ``wait`` (the
            value is stored anyway).
        :raises StoreError: the value could not be stored or sent.
        """

    def watch(self, key: str, watcher: Watcher) -> None:
        """Tell ``watcher`` about ``key`` (see :class:`Watcher`) from a
        daemon thread of the calling process, as long as the watcher lives
        (it is held weakly) or until the store is closed. Call it again
        after a fork: threads do not survive one."""


def validate_ttl(ttl: int) -> None:
    """Check a time to live given to :meth:`Store.put`, ``add`` or ``incr``.

    :param ttl: seconds; must be an ``int`` (not a bool) and at least 1.
    :raises ValueError: if it is not.
    """
    # bool is an int subclass, but True as a lifetime is always a bug.
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
        raise ValueError(f"ttl must be a whole number of seconds >= 1, got {ttl!r}")
