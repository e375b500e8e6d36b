"""SQLite backend of the ephemeral state store, for single-machine deployments.

All worker processes of one machine (e.g. the server's workers) open the same
database file. The database runs in WAL mode so readers never wait for the
writer, and every operation is a single SQL statement, which SQLite runs as
its own transaction under the database write lock; that is what makes
``add``, ``take`` and ``incr`` atomic across threads and processes.

Expiry times are wall-clock Unix times (seconds), shared by every process of
the machine. Reads ignore expired rows; writes purge them from time to time.

A process keeps the values it reads and reads a key again only once it has
changed, which it learns from the key's change counter in ``<path>.changes``
(:mod:`idp.store.changes`): a read of an unchanged key (the clients'
generation, an account's version, a revocation marker that is absent) costs
no query.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from idp.store.base import StoreError, validate_ttl
from idp.store.changes import ChangeCounters
from idp.store.checkpoints import NO_AUTOMATIC_CHECKPOINT, keep_checkpointed
from idp.store.kept import KeptTexts

# How long a statement waits for another process's write lock before failing;
# writes take microseconds, so reaching this means the file is stuck.
_BUSY_TIMEOUT_SECONDS = 10.0

# Expired rows are invisible to reads, so purging is only about file size and
# need not happen on every write.
_PURGE_INTERVAL_SECONDS = 60.0

# How long a process keeps a value it read while its key's change counter
# stays put: the bound on a stale read after a writer died between its
# commit and its count (killed at that instant).
_KEPT_SECONDS = 1.0

_SCHEMA = (
    # TEXT affinity makes counters come back from get() as JSON text, as on Redis.
    (
        "CREATE TABLE IF NOT EXISTS entries ("
        " key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL"
        ") WITHOUT ROWID"
    ),
    "CREATE INDEX IF NOT EXISTS entries_expires_at ON entries (expires_at)",
    (
        "CREATE TABLE IF NOT EXISTS map_fields ("
        " key TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,"
        " expires_at REAL NOT NULL, PRIMARY KEY (key, field)"
        ") WITHOUT ROWID"
    ),
    (
        "CREATE TABLE IF NOT EXISTS queue_items ("
        " queue TEXT NOT NULL, item TEXT NOT NULL, value TEXT NOT NULL,"
        " due_at REAL NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (queue, item)"
        ") WITHOUT ROWID"
    ),
    "CREATE INDEX IF NOT EXISTS queue_items_due_at ON queue_items (queue, due_at)",
)

_PUT = (
    "INSERT INTO entries (key, value, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)
# The upsert only overwrites an expired row, so the row count says whether we stored.
_ADD = _PUT + " WHERE entries.expires_at <= ?"
_GET = "SELECT value, expires_at FROM entries WHERE key = ? AND expires_at > ?"
_REPLACE = "UPDATE entries SET value = ?, expires_at = ? WHERE key = ? AND expires_at > ?"
# The keys come as one JSON array, so the statement is the same for any number.
_GET_MANY = ("SELECT key, value, expires_at FROM entries"
             " WHERE key IN (SELECT value FROM json_each(?)) AND expires_at > ?")
_TAKE = "DELETE FROM entries WHERE key = ? RETURNING value, expires_at"
_DELETE = "DELETE FROM entries WHERE key = ?"
# In an UPDATE every right-hand side sees the old row, so both CASEs test the
# same (old) expiry.
_INCR = (
    "INSERT INTO entries (key, value, expires_at) VALUES (:key, :amount, :expires_at)"
    " ON CONFLICT (key) DO UPDATE SET"
    " value = CASE WHEN entries.expires_at > :now THEN entries.value + :amount"
    " ELSE :amount END,"
    " expires_at = CASE WHEN entries.expires_at > :now"
    " THEN entries.expires_at ELSE excluded.expires_at END"
    " RETURNING value"
)
_TTL = "SELECT expires_at FROM entries WHERE key = ? AND expires_at > ?"
_PURGE = (
    "DELETE FROM entries WHERE expires_at <= ?",
    "DELETE FROM map_fields WHERE expires_at <= ?",
    "DELETE FROM queue_items WHERE expires_at <= ?",
)
_MAP_PUT = (
    "INSERT INTO map_fields (key, field, value, expires_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key, field) DO UPDATE SET value = excluded.value,"
    " expires_at = excluded.expires_at"
)
_MAP_DELETE = "DELETE FROM map_fields WHERE key = ? AND field = ?"
_MAP_GET = "SELECT field, value FROM map_fields WHERE key = ? AND expires_at > ?"
_QUEUE_PUSH = (
    "INSERT INTO queue_items (queue, item, value, due_at, expires_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (queue, item) DO UPDATE SET value = excluded.value,"
    " due_at = excluded.due_at, expires_at = excluded.expires_at"
)
# One statement, so under the write lock no other claimer sees the item due.
_QUEUE_CLAIM = (
    "UPDATE queue_items SET due_at = :until WHERE queue = :queue AND item = ("
    " SELECT item FROM queue_items WHERE queue = :queue AND due_at <= :now"
    " AND expires_at > :now ORDER BY due_at LIMIT 1)"
    " RETURNING item, value"
)
_QUEUE_DONE = "DELETE FROM queue_items WHERE queue = ? AND item = ?"

# Connections inherited through fork(). SQLite forbids using a connection in a
# process other than the one that opened it, and closing one is a use, so they
# are kept referenced here for the life of the process instead of being
# collected (and closed) by the garbage collector.
_inherited: list[sqlite3.Connection] = []


class EmbeddedStore:
    """A :class:`~idp.store.base.Store` kept in a SQLite database file.

    :param path: filesystem path of the database file; it is created on first
        use, but its directory must exist. It must be on a local filesystem
        (SQLite locking is unreliable over NFS and the like).
    :param prefix: prepended to every key.

    Each thread of each process lazily opens its own connection, so an
    instance may be created before the server forks its workers and shared by
    the threads of a worker.

    Every method raises :class:`~idp.store.base.StoreError` when the file
    cannot be opened, read or written (including a write lock held by another
    process for longer than 10 seconds).
    """

    def __init__(self, path: str, prefix: str = "") -> None:
        self._path = path
        self._prefix = prefix
        self._local = threading.local()
        # Shared by threads without a lock: a lost update only means an extra purge.
        self._next_purge = 0.0
        self._write_lock = threading.Lock()
        self._lock_file: tuple[int, int] | None = None  # (pid, fd)
        self._changes: ChangeCounters | None = None
        # key -> (its change count, read at (monotonic), JSON text or None, expires at)
        self._kept = KeptTexts()

    def put(self, key: str, value: dict, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any entry."""
        validate_ttl(ttl)
        with self._writer(key) as conn:
            now = time.time()
            conn.execute(_PUT, (self._prefix + key, _encode(value), now + ttl))
            self._maybe_purge(conn, now)

    def put_many(self, entries: Sequence[tuple[str, dict, int]]) -> None:
        """Store each ``(key, value, ttl)``, replacing any entry, in one
        transaction."""
        for _key, _value, ttl in entries:
            validate_ttl(ttl)
        with self._writer(*(key for key, _value, _ttl in entries)) as conn:
            now = time.time()
            rows = [(self._prefix + key, _encode(value), now + ttl)
                    for key, value, ttl in entries]
            with _transaction(conn):
                conn.executemany(_PUT, rows)
            self._maybe_purge(conn, now)

    def put_many_counted(self, counter: str, window: int, limit: int,
                         entries: Sequence[tuple[str, dict, int]]) -> int:
        """Count one event under ``counter`` and store ``entries`` if the
        count is at most ``limit``, in one transaction
        (:meth:`~idp.store.base.Store.put_many_counted`).

        :returns: the count after this call.
        """
        validate_ttl(window)
        for _key, _value, ttl in entries:
            validate_ttl(ttl)
        with self._writer(counter, *(key for key, _value, _ttl in entries)) as conn:
            now = time.time()
            with _transaction(conn):
                row = _first(conn.execute(_INCR, {"key": self._prefix + counter,
                                                  "expires_at": now + window, "now": now,
                                                  "amount": 1}))
                count = int(row[0])
                if count <= limit:
                    conn.executemany(_PUT, [(self._prefix + key, _encode(value), now + ttl)
                                            for key, value, ttl in entries])
            self._maybe_purge(conn, now)
        return count

    def add(self, key: str, value: dict, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds unless a live ``key`` exists; True if stored."""
        validate_ttl(ttl)
        with self._writer(key) as conn:
            now = time.time()
            params = (self._prefix + key, _encode(value), now + ttl, now)
            stored = conn.execute(_ADD, params).rowcount == 1
            self._maybe_purge(conn, now)
        return stored

    def replace(self, key: str, value: dict, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds if a live ``key`` exists; True if replaced."""
        validate_ttl(ttl)
        with self._writer(key) as conn:
            now = time.time()
            return conn.execute(_REPLACE, (_encode(value), now + ttl, self._prefix + key,
                                           now)).rowcount == 1

    def get(self, key: str) -> dict | None:
        """The value under ``key``, or None if absent or expired; kept from
        an earlier read while the key has not changed."""
        return self._values([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[dict | None]:
        """The values under ``keys`` in their order (None where absent or
        expired): those kept from an earlier read while their keys have not
        changed, the others read by one statement."""
        return self._values(keys) if keys else []

    def _values(self, keys: Sequence[str]) -> list[dict | None]:
        names = [self._prefix + key for key in keys]
        changes = self._counters()
        # Each count before the read it stands for (idp.store.changes).
        counts = {name: changes.read(changes.slot(name)) for name in names}
        now, clock = time.time(), time.monotonic()
        texts: dict[str, str | None] = {}
        for name, count in counts.items():
            kept = self._kept.get(name)
            if (kept is not None and kept[0] == count and clock - kept[1] < _KEPT_SECONDS
                    and now < kept[3]):
                texts[name] = kept[2]
        missing = [name for name in counts if name not in texts]
        if missing:
            with self._connection() as conn:
                if len(missing) == 1:
                    rows = [(missing[0], *row) for row in
                            conn.execute(_GET, (missing[0], now)).fetchall()]
                else:
                    rows = conn.execute(_GET_MANY, (json.dumps(missing), now)).fetchall()
            found = {name: (text, expires_at) for name, text, expires_at in rows}
            for name in missing:
                text, expires_at = found.get(name, (None, math.inf))
                texts[name] = text
                self._kept.keep(name, (counts[name], clock, text, expires_at), text)
        return [None if texts[name] is None else json.loads(texts[name]) for name in names]

    def take(self, key: str) -> dict | None:
        """Delete ``key`` and return its value; None if absent or expired."""
        with self._writer(key) as conn:
            now = time.time()
            row = _first(conn.execute(_TAKE, (self._prefix + key,)))
        # An expired row is deleted too, which saves the purge the work.
        if row is None or row[1] <= now:
            return None
        return json.loads(row[0])

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        with self._writer(key) as conn:
            conn.execute(_DELETE, (self._prefix + key,))

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        """Increment the fixed-window counter ``key`` (window of ``ttl`` seconds).

        :returns: the new count; 1 means a new window was started.
        """
        validate_ttl(ttl)
        with self._writer(key) as conn:
            now = time.time()
            params = {"key": self._prefix + key, "expires_at": now + ttl, "now": now,
                      "amount": amount}
            row = _first(conn.execute(_INCR, params))
            self._maybe_purge(conn, now)
        # TEXT affinity has already turned the count into a string.
        return int(row[0])

    def counter(self, key: str) -> int:
        """The count of the :meth:`incr` window under ``key``; 0 if absent or expired."""
        value = self.get(key)
        return value if isinstance(value, int) else 0

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires, rounded up; None if absent or expired."""
        with self._connection() as conn:
            now = time.time()
            row = _first(conn.execute(_TTL, (self._prefix + key, now)))
        return None if row is None else math.ceil(row[0] - now)

    def ping(self) -> None:
        """Open the database and read from it; raises StoreError if that fails."""
        with self._connection() as conn:
            _first(conn.execute("SELECT 1 FROM entries LIMIT 1"))

    def map_put(self, key: str, field: str, value: dict, ttl: int) -> None:
        """Store ``field`` of the map ``key`` for ``ttl`` seconds
        (:meth:`~idp.store.base.Store.map_put`)."""
        validate_ttl(ttl)
        with self._writer(key) as conn:
            now = time.time()
            conn.execute(_MAP_PUT, (self._prefix + key, field, _encode(value), now + ttl))
            self._maybe_purge(conn, now)

    def map_delete(self, key: str, field: str) -> None:
        """Remove ``field`` from the map ``key``."""
        with self._writer(key) as conn:
            conn.execute(_MAP_DELETE, (self._prefix + key, field))

    def map_get(self, key: str) -> dict[str, dict]:
        """The live fields of the map ``key``."""
        with self._connection() as conn:
            rows = conn.execute(_MAP_GET, (self._prefix + key, time.time())).fetchall()
        return {field: json.loads(text) for field, text in rows}

    def queue_push(self, queue: str, item: str, value: dict, delay: int, ttl: int) -> None:
        """Schedule ``item`` in ``queue`` (:meth:`~idp.store.base.Store.queue_push`)."""
        validate_ttl(ttl)
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        with self._writer(queue) as conn:
            now = time.time()
            conn.execute(_QUEUE_PUSH, (self._prefix + queue, item, _encode(value),
                                       now + delay, now + ttl))
            self._maybe_purge(conn, now)

    def queue_claim(self, queue: str, lease: int) -> tuple[str, dict] | None:
        """Take the longest-due item of ``queue`` for ``lease`` seconds
        (:meth:`~idp.store.base.Store.queue_claim`)."""
        validate_ttl(lease)
        with self._writer(queue) as conn:
            now = time.time()
            row = _first(conn.execute(_QUEUE_CLAIM, {"queue": self._prefix + queue,
                                                     "now": now, "until": now + lease}))
        return None if row is None else (row[0], json.loads(row[1]))

    def queue_done(self, queue: str, item: str) -> None:
        """Remove ``item`` from ``queue``."""
        with self._writer(queue) as conn:
            conn.execute(_QUEUE_DONE, (self._prefix + queue, item))

    def close(self) -> None:
        """Close the calling thread's connection and the lock file (a later
        call reopens them)."""
        conn = self._owned_connection()
        if conn is not None:
            conn.close()
            self._local.conn = None
        with self._write_lock:  # no writer of this process is using it
            opened, self._lock_file = self._lock_file, None
            if opened is not None and opened[0] == os.getpid():
                os.close(opened[1])

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, with SQLite errors turned into StoreError."""
        try:
            conn = self._owned_connection()
            if conn is None:
                conn = self._local.conn = self._open()
                self._local.pid = os.getpid()
            yield conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"embedded store {self._path!r}: {exc}") from exc

    @contextmanager
    def _writer(self, *keys: str) -> Iterator[sqlite3.Connection]:
        """This thread's connection, for a write of ``keys``: under the
        store's write lock (:meth:`_writing`), and counted as changed once
        written (before the lock is given back)."""
        changes = self._counters()
        with self._writing():
            try:
                with self._connection() as conn:
                    yield conn
            finally:
                changes.count(changes.slot(self._prefix + key) for key in keys)

    def _counters(self) -> ChangeCounters:
        changes = self._changes
        if changes is None:
            try:
                changes = self._changes = ChangeCounters(self._path + ".changes")
            except OSError as exc:
                raise StoreError(f"embedded store {self._path!r}: {exc}") from exc
        return changes

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the store's write lock: a thread lock in this process and an
        ``flock`` on ``<path>.lock`` across processes. SQLite lets one
        writer in at a time and makes the others sleep in growing steps (up
        to 100 ms) while they wait, which put the waits of a few requests
        in the hundreds of milliseconds under load; a waiter on the lock
        file is woken the moment it is free. Writes take microseconds, so
        holding it costs nothing else."""
        with self._write_lock:
            fd = self._lock_fd()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_fd(self) -> int:
        opened = self._lock_file
        if opened is None or opened[0] != os.getpid():
            try:
                fd = os.open(self._path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreError(f"embedded store {self._path!r}: {exc}") from exc
            self._lock_file = opened = (os.getpid(), fd)
        return opened[1]

    def _owned_connection(self) -> sqlite3.Connection | None:
        """This thread's connection if this process opened it, else None."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid != os.getpid():
            _inherited.append(conn)
            conn = self._local.conn = None
        return conn

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit BEGIN, so each statement commits on its own.
        conn = sqlite3.connect(self._path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            _enable_wal(conn)
            # In WAL mode NORMAL only risks the last commits on power loss, which
            # is acceptable for state that is short-lived anyway.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(NO_AUTOMATIC_CHECKPOINT)
            for statement in _SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        keep_checkpointed(self._path)
        return conn

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        clock = time.monotonic()
        if clock < self._next_purge:
            return
        self._next_purge = clock + _PURGE_INTERVAL_SECONDS
        for statement in _PURGE:
            conn.execute(statement, (now,))


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite fails
    # that at once with SQLITE_BUSY instead of calling the busy handler; workers
    # starting together on a new file hit this, so wait for the lock ourselves.
    deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on an autocommit connection: taking the write
    lock at BEGIN, committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _encode(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _first(cursor: sqlite3.Cursor) -> tuple[Any, ...] | None:
    # Drain the cursor: a statement left unfinished keeps its implicit
    # transaction (and, for RETURNING, the write lock) open until collected.
    rows = cursor.fetchall()
    return rows[0] if rows else None
