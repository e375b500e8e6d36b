"""Write-ahead log checkpoints of the embedded SQLite files, off the
request path.

In WAL mode SQLite copies the log back into the database file
(a *checkpoint*) inside the commit that grows the log past 1,000 pages, so
one request in a few hundred pays several milliseconds for everyone's
writes: measured on the single sign-on hop, the automatic checkpoint made
its 99th percentile 6–8 ms against 1.8 ms without. Connections of the
embedded store and of the SQLite database therefore turn the automatic
checkpoint off (:data:`NO_AUTOMATIC_CHECKPOINT`), and one thread per
process runs a passive checkpoint of each of its files every
:data:`INTERVAL_SECONDS`: it copies what no reader still needs and waits
for no one. A process that
ends closes its connections, and SQLite checkpoints the file when the
last one closes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

log = logging.getLogger(__name__)

#: Run on each connection: no checkpoint inside a commit.
NO_AUTOMATIC_CHECKPOINT = "PRAGMA wal_autocheckpoint=0"
#: Seconds between two passive checkpoints of one file.
INTERVAL_SECONDS = 1.0
#: Seconds a checkpoint waits for a lock before it gives up until the next one.
_BUSY_TIMEOUT_SECONDS = 1.0

_lock = threading.Lock()
#: Files to checkpoint, and the process whose thread does it.
_paths: set[str] = set()
_pid: int | None = None


def keep_checkpointed(path: str) -> None:
    """Have this process's checkpointing thread checkpoint the SQLite file
    at ``path`` every :data:`INTERVAL_SECONDS`. The thread starts on the
    first call in each process, so a server that forks its workers gets one
    per worker.

    :param path: the database file (its ``-wal`` file is beside it).
    """
    global _pid
    path = os.path.abspath(path)
    if _pid == os.getpid() and path in _paths:
        return
    with _lock:
        if _pid != os.getpid():
            # Forked: the parent's thread does not exist here.
            _pid = os.getpid()
            _paths.clear()
            threading.Thread(target=_run, name="sqlite-checkpoint", daemon=True).start()
        _paths.add(path)


def _run() -> None:
    connections: dict[str, sqlite3.Connection] = {}
    while True:
        time.sleep(INTERVAL_SECONDS)
        with _lock:
            paths = list(_paths)
        for path in paths:
            try:
                conn = connections.get(path)
                if conn is None:
                    conn = connections[path] = sqlite3.connect(
                        path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                # A file being created or removed (tests, a restore): next time.
                log.debug("checkpoint of %s skipped: %s", path, exc)
                stale = connections.pop(path, None)
                if stale is not None:
                    stale.close()
