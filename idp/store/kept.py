"""Values a worker process keeps from the store so that it need not read
them again on every request: the bounded table both backends keep them in,
and the Redis store's pushed invalidation of them.

The embedded store learns that a kept key changed from its change counters
(:mod:`idp.store.changes`). The Redis store keeps only the keys under the
prefixes it is given (revocation markers, accounts' versions: written
rarely, read on every request that carries a token) and learns of their
changes from a subscription: every write of such a key publishes its name
on the store's change channel in the same ``MULTI``/``EXEC`` and returns
once every subscribed process has dropped it (:class:`PushedKeeps`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

#: Values kept per store instance and process, and the bytes of their JSON
#: texts (UTF-8), before they are all dropped; a value over
#: :data:`KEPT_LONGEST` bytes is not kept at all. Together they bound the
#: memory a client can make a worker spend on kept values by having it read
#: many (or large) entries.
KEPT_MAX = 50_000
KEPT_MAX_BYTES = 16 * 1024 * 1024
KEPT_LONGEST = 8 * 1024


def text_size(text: str | bytes | None) -> int:
    """Bytes of a kept JSON text in UTF-8 (JSON kept with
    ``ensure_ascii=False`` may hold four bytes a character); 0 for None."""
    if text is None:
        return 0
    return len(text) if isinstance(text, bytes) else len(text.encode())


class KeptTexts:
    """A table of kept entries, each holding one JSON text (or None for an
    absent key), bounded by :data:`KEPT_MAX` entries and
    :data:`KEPT_MAX_BYTES` bytes of text: past either bound it is emptied.

    Reads need no lock (one dict lookup); threads that write without one
    may make the byte count approximate, and it is exact again each time
    the table is emptied.
    """

    def __init__(self) -> None:
        # name -> (entry, bytes of its text)
        self._entries: dict[str, tuple[tuple, int]] = {}
        self._bytes = 0

    def get(self, name: str) -> tuple | None:
        """The entry kept under ``name``, or None."""
        kept = self._entries.get(name)
        return None if kept is None else kept[0]

    def keep(self, name: str, entry: tuple, text: str | bytes | None) -> None:
        """Keep ``entry`` under ``name``, replacing any; ``text`` is its JSON
        text, which counts towards the bounds. One over
        :data:`KEPT_LONGEST` bytes is not kept (and what was kept under
        ``name`` stays)."""
        size = text_size(text)
        if size > KEPT_LONGEST:
            return
        if len(self._entries) >= KEPT_MAX or self._bytes + size > KEPT_MAX_BYTES:
            self.clear()
        before = self._entries.get(name)
        self._entries[name] = (entry, size)
        self._bytes += size - (0 if before is None else before[1])

    def drop(self, names: Iterable[str]) -> None:
        """Forget the entries under ``names`` (absent ones are ignored)."""
        for name in names:
            kept = self._entries.pop(name, None)
            if kept is not None:
                self._bytes -= kept[1]

    def clear(self) -> None:
        """Forget every entry."""
        self._entries = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes of the kept texts (approximate while threads write)."""
        return self._bytes


class PushedKeeps:
    """What one process of a Redis store keeps of the keys under
    ``prefixes``, relied on only while a subscription to the store's change
    channel is proven live: a :class:`~idp.store.base.Watcher` of that
    channel, whose messages name the keys a write changed.

    Safe across threads. A read that finds no usable entry reads Redis and
    offers what it read to :meth:`keep` with the epoch :meth:`trusted`
    gave it before the read; any change told meanwhile (or a dropped
    subscription) moves the epoch on, and the offer is refused: a value
    read before a write is never kept after the write was told.

    :param prefixes: the key prefixes whose values are kept; every write of
        such a key must go through the store (which tells it), never
        around it.
    """

    def __init__(self, prefixes: Sequence[str]) -> None:
        self._prefixes = tuple(prefixes)
        self._texts = KeptTexts()
        self._lock = threading.Lock()
        self._epoch = 0
        self._trusted_until = 0.0

    def covers(self, key: str) -> bool:
        """Whether ``key`` is one this process keeps (and writes of it are told)."""
        return bool(self._prefixes) and key.startswith(self._prefixes)

    def trusted(self) -> int | None:
        """The current epoch while the kept values may be relied on (the
        subscription confirmed lately), else None."""
        epoch = self._epoch
        return epoch if time.monotonic() < self._trusted_until else None

    def lookup(self, key: str, now: float) -> tuple[bool, bytes | None]:
        """``(True, text)`` for a value kept under ``key`` that has not
        expired by ``now`` (``time.monotonic()`` seconds; ``text`` None for
        a key kept as absent), else ``(False, None)``. Ask only while
        :meth:`trusted`."""
        entry = self._texts.get(key)
        if entry is None or now >= entry[1]:
            return False, None
        return True, entry[0]

    def keep(self, epoch: int, items: Iterable[tuple[str, bytes | None, float]]) -> None:
        """Keep each ``(key, text, expires at)`` read under ``epoch`` (from
        :meth:`trusted`), unless a change was told since; ``expires at`` is
        in ``time.monotonic()`` seconds (``math.inf`` for an absent key,
        which only a told write can bring)."""
        with self._lock:
            if epoch != self._epoch:
                return
            for key, text, expires_at in items:
                self._texts.keep(key, (text, expires_at), text)

    def drop(self, keys: Iterable[str]) -> None:
        """Forget ``keys``: they changed."""
        with self._lock:
            self._epoch += 1
            self._texts.drop(keys)

    def reset(self) -> None:
        """Forget everything and rely on nothing until confirmed again."""
        with self._lock:
            self._epoch += 1
            self._trusted_until = 0.0
            self._texts.clear()

    def watching(self, value: dict | None) -> None:
        """Subscribed (again): what changed meanwhile was not told, so
        everything kept is forgotten."""
        self.reset()

    def published(self, value: dict) -> None:
        """A write changed the keys the message names."""
        keys = value.get("keys") if isinstance(value, dict) else None
        if isinstance(keys, list) and all(isinstance(key, str) for key in keys):
            self.drop(keys)
        else:  # not ours to read: forget everything rather than guess
            self.reset()

    def confirmed(self, until: float) -> None:
        """Every change until now was told: rely on the kept values until
        ``until`` (``time.monotonic()`` seconds)."""
        self._trusted_until = until

    def lost(self) -> None:
        """The subscription dropped: changes are no longer told."""
        self.reset()

    def __len__(self) -> int:
        return len(self._texts)
