"""The embedded SQLite files are checkpointed by a thread of their own,
never inside a request's commit (``idp.store.checkpoints``)."""

from __future__ import annotations

import os
import time

from idp.store import checkpoints
from idp.store.embedded import EmbeddedStore


def test_store_connections_do_not_checkpoint_in_a_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "keep_checkpointed", lambda path: None)
    monkeypatch.setattr("idp.store.embedded.keep_checkpointed", lambda path: None)
    store = EmbeddedStore(str(tmp_path / "store.sqlite3"))
    store.get("x")
    conn = store._local.conn
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for n in range(1500):  # more than the 1,000 pages of SQLite's default
        store.put(f"k{n}", {"v": "x" * 3000}, 60)
    wal = tmp_path / "store.sqlite3-wal"
    assert wal.stat().st_size > 1400 * 4096  # no automatic checkpoint reset the log


def test_the_thread_copies_the_log_into_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "INTERVAL_SECONDS", 0.05)
    path = str(tmp_path / "store.sqlite3")
    store = EmbeddedStore(path)
    for n in range(300):
        store.put(f"k{n}", {"v": "x" * 3000}, 60)
    assert os.path.abspath(path) in checkpoints._paths
    deadline = time.monotonic() + 10
    while os.path.getsize(path) < 300 * 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.getsize(path) >= 300 * 3000


def test_a_writer_waits_on_the_lock_file_not_in_sqlite(tmp_path):
    """Writers of the embedded store queue on ``<path>.lock`` (woken as soon
    as it is free) instead of SQLite's busy handler, which sleeps in steps
    of up to 100 ms: a write waits exactly as long as another process
    holds the lock."""
    import fcntl
    import threading

    path = str(tmp_path / "store.sqlite3")
    store = EmbeddedStore(path)
    store.put("k", {"v": 0}, 60)
    holder = os.open(path + ".lock", os.O_RDWR)  # another open file: another "process"
    fcntl.flock(holder, fcntl.LOCK_EX)
    done = threading.Event()
    writer = threading.Thread(target=lambda: (store.put("k", {"v": 1}, 60), done.set()))
    writer.start()
    assert not done.wait(0.3)  # held
    fcntl.flock(holder, fcntl.LOCK_UN)
    released = time.monotonic()
    assert done.wait(5)
    assert time.monotonic() - released < 0.05  # woken at once
    writer.join()
    os.close(holder)
    assert store.get("k") == {"v": 1}
    store.close()
