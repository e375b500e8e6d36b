"""Writers of the SQLite database queue on a lock file.

SQLite lets one transaction write at a time. The others wait in its busy
handler, which sleeps in growing steps (1, 2, 5, 10 ... up to 100 ms) and
looks again: under load a waiter slept on long after the writer before it
had committed, and a refresh-token rotation took up to 1.2 s at the 99th
percentile with two worker processes. :class:`WriterQueue` makes every
transaction take, at its first write, a thread lock in its process and an
``flock`` on ``<database>.lock`` across processes, and give both back when
its connection goes back to the pool, which the session does right after
its COMMIT or ROLLBACK (SQLAlchemy's ``commit`` event comes before the
COMMIT is sent, so it would let the next writer in too early). A waiting
thread of the same process is woken the moment the writer before it is
done; the one thread per process that waits for another process tries the
lock file at most 5 ms apart. The embedded store queues its writers on a
lock file too (:mod:`idp.store.embedded`).

Reads take nothing: in WAL mode they never wait for a writer.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

#: Leading keywords of statements that do not write.
READ_KEYWORDS = frozenset({"SELECT", "PRAGMA", "EXPLAIN", "SAVEPOINT", "RELEASE", "BEGIN"})
#: Longest sleep between two tries of the lock file, seconds.
MAX_POLL_SECONDS = 0.005
#: ``connection record info`` key set while a connection holds the queue.
HELD = "idp_sqlite_writer"


class WriterQueue:
    """The write lock of one SQLite database file, for every connection of
    an engine.

    :param database: path of the database file; the lock file is
        ``<database>.lock`` (created owner-only).
    :param timeout: seconds a write waits for the queue (another thread of
        its process, then another process) before its statement fails as
        SQLite's would (``database is locked``).
    """

    def __init__(self, database: str, timeout: float) -> None:
        self._path = database + ".lock"
        self._timeout = timeout
        self._thread_lock = threading.Lock()
        self._file: tuple[int, int] | None = None  # (pid, fd)
        self._file_lock = threading.Lock()

    def install(self, engine: Engine) -> None:
        """Have every transaction of ``engine`` queue here at its first
        write; :func:`writer_queue` then gives this queue for ``engine``."""
        _queues[engine] = self
        event.listen(engine, "before_cursor_execute", self._before_execute)
        # After the pool's own rollback (its "reset" event comes before it).
        event.listen(engine.pool, "checkin", self._on_checkin)
        event.listen(engine.pool, "invalidate", self._on_invalidate)
        event.listen(engine.pool, "close", self._on_checkin)

    def _before_execute(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        info = conn.connection.info if conn.connection is not None else None
        if info is None or info.get(HELD):
            return
        words = statement.split(None, 1)
        if words and words[0].upper() in READ_KEYWORDS:
            return
        self.acquire()
        info[HELD] = True

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            self._release_info(record.info)

    def _on_invalidate(self, _dbapi_connection: Any, record: Any, _exception: Any) -> None:
        if record is not None:
            self._release_info(record.info)

    def _release_info(self, info: dict) -> None:
        if info.pop(HELD, False):
            self.release()

    def release(self) -> None:
        """Give back the queue taken by :meth:`acquire`."""
        fcntl.flock(self._fd(), fcntl.LOCK_UN)
        self._thread_lock.release()

    def acquire(self) -> None:
        """Take the queue for a transaction that writes without the
        engine's events (:mod:`idp.db.direct`), until :meth:`release`:
        the thread lock, then the lock file, within ``timeout``.

        :raises sqlite3.OperationalError: ``database is locked`` after the
            timeout, as SQLite's busy handler fails.
        """
        deadline = time.monotonic() + self._timeout
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            fd = self._fd()
            # One thread per process waits here (the others wait for the
            # thread lock); flock has no timeout, so it is polled, at
            # most 5 ms apart, against the deadline.
            delay = 0.0002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise sqlite3.OperationalError("database is locked") from None
                    time.sleep(delay)
                    delay = min(delay * 2, MAX_POLL_SECONDS)
        except BaseException:
            self._thread_lock.release()
            raise

    def _fd(self) -> int:
        # Opened again in a forked worker: a descriptor shared with the
        # parent would share its lock too.
        opened = self._file
        if opened is None or opened[0] != os.getpid():
            with self._file_lock:
                opened = self._file
                if opened is None or opened[0] != os.getpid():
                    fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._file = opened = (os.getpid(), fd)
        return opened[1]


_queues: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()


def writer_queue(engine: Engine) -> WriterQueue | None:
    """The queue installed on ``engine``, or None (not SQLite, or in memory)."""
    return _queues.get(engine)
