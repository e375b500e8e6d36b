"""Writers of the SQLite database queue on ``<database>.lock``
(idp.db.writer_queue): a transaction holds the queue from its first write
until its connection goes back to the pool, reads never take it, and a
waiter goes on as soon as the writer before it is done."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from idp.db.writer_queue import WriterQueue


@pytest.fixture
def engine(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    WriterQueue(path, timeout=0.5).install(engine)
    yield engine, path + ".lock"
    engine.dispose()


def _queue_is_free(lock_path: str) -> bool:
    """Whether another process could take the queue now (a descriptor of
    its own, as another process has)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_transaction_holds_the_queue_from_its_first_write_until_it_ends(engine):
    engine, lock_path = engine
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM t"))
        assert _queue_is_free(lock_path)
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert not _queue_is_free(lock_path)
        conn.execute(text("INSERT INTO t VALUES (2)"))
        conn.commit()
    assert _queue_is_free(lock_path)


@pytest.mark.parametrize("ending", ["rollback", "error", "close"])
def test_every_way_a_transaction_ends_frees_the_queue(engine, ending):
    engine, lock_path = engine
    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES (1)"))
    if ending == "rollback":
        conn.rollback()
    elif ending == "error":
        with pytest.raises(OperationalError):
            conn.execute(text("INSERT INTO missing VALUES (1)"))
        conn.rollback()
    conn.close()
    assert _queue_is_free(lock_path)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_a_writer_of_another_process_waits_for_the_queue(engine):
    """The queue crosses processes: while another process holds the lock
    file, a write here waits; it goes on the moment the lock is given back."""
    engine, lock_path = engine
    other = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)
    done = threading.Event()

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.3)
    fcntl.flock(other, fcntl.LOCK_UN)
    os.close(other)
    assert done.wait(10)
    writer.join()


def test_a_thread_waits_at_most_the_timeout_then_fails_as_sqlite_does(engine):
    engine, _ = engine
    holder = engine.connect()
    holder.execute(text("INSERT INTO t VALUES (1)"))
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (2)"))
        except OperationalError as exc:
            failure.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(10)
    holder.commit()
    holder.close()
    assert failure and isinstance(failure[0].orig, sqlite3.OperationalError)
    assert "database is locked" in str(failure[0])
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (3)"))
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_a_writer_waits_for_another_process_at_most_the_timeout(engine):
    """flock has no timeout: a process holding the queue for minutes (an
    operator's long command) held every writer of the server with it, past
    SQLite's 30 s (found by the attack on issue 9). The wait now ends at
    the timeout, as SQLite's, and leaves the queue usable."""
    engine, lock_path = engine
    other = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
