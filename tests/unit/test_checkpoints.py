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
