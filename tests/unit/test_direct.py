"""Statements on kept DBAPI connections (:mod:`idp.db.direct`): values read
and written as the engine reads and writes them, one connection per thread
kept until the engine is disposed, SQLite's writer queue held by a
transaction, and a PostgreSQL connection killed under it replaced."""

from __future__ import annotations

import gc
import threading
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, bindparam

from idp.db import direct as direct_module
from idp.db.direct import Prepared, direct
from idp.db.writer_queue import WriterQueue, writer_queue
from tests.conftest import fresh_postgres_database

metadata = MetaData()
things = Table("direct_things", metadata, Column("id", Integer, primary_key=True),
               Column("name", String(20)), Column("at", DateTime), Column("doc", JSON))
stamped = Table("direct_stamped", MetaData(), Column("id", Integer, primary_key=True),
                Column("at", DateTime, default=datetime.now))
FIND = sa.select(things.c.id, things.c.name, things.c.at, things.c.doc).where(
    things.c.id == bindparam("id"))
ADD = sa.insert(things)
KEYS = ("id", "name", "at", "doc")
AT = datetime(2026, 12, 7, 8, 9, 10, 123456)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        path = str(tmp_path / "db.sqlite3")
        engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        metadata.create_all(engine)
        WriterQueue(path, timeout=5).install(engine)
        yield engine
        engine.dispose()
        return
    import os

    base = os.environ.get("IDP_TEST_DATABASE_URL")
    if not base:
        pytest.skip("IDP_TEST_DATABASE_URL is not set")
    with fresh_postgres_database(base) as url:
        engine = sa.create_engine(url, pool_pre_ping=True)
        metadata.create_all(engine)
        yield engine
        engine.dispose()


def _add(engine, **values) -> None:
    kept = direct(engine)
    with kept.transaction() as transaction:
        assert transaction.execute(kept.prepare(ADD, KEYS), values) == 1


def test_values_round_trip_as_the_engine_reads_them(engine):
    _add(engine, id=1, name="Zhang", at=AT, doc={"amr": ["pwd", "sms"], "n": 1})
    kept = direct(engine)
    row = kept.first(kept.prepare(FIND), {"id": 1})
    with engine.connect() as conn:
        expected = conn.execute(FIND, {"id": 1}).one()
    assert tuple(row) == tuple(expected) == (1, "Zhang", AT, {"amr": ["pwd", "sms"], "n": 1})
    assert (row.name, row.at) == ("Zhang", AT)
    assert kept.first(kept.prepare(FIND), {"id": 2}) is None
    # Written by the engine, read directly: the same values.
    with engine.begin() as conn:
        conn.execute(ADD, {"id": 3, "name": None, "at": AT, "doc": None})
    assert tuple(kept.first(kept.prepare(FIND), {"id": 3})) == (3, None, AT, None)


def test_a_comparison_with_a_bound_timestamp_agrees_with_the_engine(engine):
    _add(engine, id=1, name="a", at=AT, doc=None)
    kept = direct(engine)
    later = sa.update(things).where(things.c.id == bindparam("row"),
                                    things.c.at > bindparam("now")).values(name="b")
    with kept.transaction() as transaction:
        assert transaction.execute(kept.prepare(later), {"row": 1, "now": AT}) == 0
        assert transaction.execute(kept.prepare(later),
                                   {"row": 1, "now": AT.replace(microsecond=0)}) == 1


def test_python_side_defaults_are_refused(engine):
    with pytest.raises(ValueError, match="Python-side defaults"):
        Prepared(sa.insert(stamped), engine.dialect, ("id",))
    assert Prepared(sa.insert(stamped), engine.dialect, ("id", "at")).sql.startswith("INSERT")


def test_a_failing_block_rolls_back_and_raises(engine):
    kept = direct(engine)
    with pytest.raises(RuntimeError), kept.transaction() as transaction:
        transaction.execute(kept.prepare(ADD, KEYS), {"id": 1, "name": "x", "at": AT,
                                                      "doc": None})
        raise RuntimeError("refused")
    assert kept.first(kept.prepare(FIND), {"id": 1}) is None
    _add(engine, id=1, name="y", at=AT, doc=None)  # the connection goes on
    assert kept.first(kept.prepare(FIND), {"id": 1}).name == "y"


def test_each_thread_keeps_one_connection_until_the_engine_is_disposed(engine):
    kept = direct(engine)
    assert direct(engine) is kept
    mine = kept._connection()[0]
    assert kept._connection() == (mine, False)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(kept._connection()[0]))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    engine.dispose()
    assert kept._kept == {}
    with pytest.raises(Exception):  # noqa: B017 - each DBAPI names its own error
        mine.cursor().execute("SELECT 1")
    again, fresh = kept._connection()
    assert fresh and again is not mine


def test_a_thread_that_ends_closes_its_connection(engine):
    kept = direct(engine)
    theirs = []

    def work() -> None:
        theirs.append(kept._connection()[0])
        assert kept.first(kept.prepare(FIND), {"id": 1}) is None

    for _ in range(5):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    gc.collect()
    assert kept._kept == {} and len(theirs) == 5
    for connection in theirs:
        with pytest.raises(Exception):  # noqa: B017 - each DBAPI names its own error
            connection.cursor().execute("SELECT 1")


def test_a_forked_child_leaves_its_parents_connections_alone(engine, monkeypatch):
    kept = direct(engine)
    parent = kept._connection()[0]
    monkeypatch.setattr(kept, "_pid", -1)  # as a forked child finds it
    child, fresh = kept._connection()
    assert fresh and child is not parent
    cursor = parent.cursor()  # never closed by the child
    cursor.execute("SELECT 1")
    assert cursor.fetchone() == (1,)
    direct_module._orphans.remove(parent)
    parent.close()


def test_a_sqlite_transaction_holds_the_writer_queue(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    queue = WriterQueue(path, timeout=0.2)
    queue.install(engine)
    assert writer_queue(engine) is queue
    kept = direct(engine)
    with kept.transaction():
        assert queue._thread_lock.locked()
        waited = []
        thread = threading.Thread(target=lambda: waited.append(
            queue._thread_lock.acquire(timeout=0.05)))
        thread.start()
        thread.join()
        assert waited == [False]
    assert not queue._thread_lock.locked()
    with pytest.raises(RuntimeError), kept.transaction():
        raise RuntimeError
    assert not queue._thread_lock.locked()
    engine.dispose()


def test_a_killed_postgresql_connection_is_replaced(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    _add(engine, id=1, name="a", at=AT, doc=None)
    kept = direct(engine)
    first = kept._connection()[0]

    def kill() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                         {"pid": first.info.backend_pid})

    kill()
    assert kept.first(kept.prepare(FIND), {"id": 1}).name == "a"
    second = kept._connection()[0]
    assert second is not first
    first = second
    kill()
    _add(engine, id=2, name="b", at=AT, doc=None)  # the transaction begins on a new one
    assert kept.first(kept.prepare(FIND), {"id": 2}).name == "b"


def test_a_failed_rollback_leaves_the_blocks_own_error(engine):
    """A rollback that fails drops (closes) the connection; closing the
    transaction's cursor then must not put its own error (SQLite's
    ``Cannot operate on a closed database``) in place of the block's."""
    kept = direct(engine)
    real = kept._connection()[0]

    class RollbackFails:
        def cursor(self):
            return real.cursor()

        def commit(self):
            real.commit()

        def rollback(self):
            raise RuntimeError("rollback failed")

        def close(self):
            real.close()

    kept._local.held.connection = RollbackFails()
    with pytest.raises(ValueError, match="the block's"), kept.transaction():
        raise ValueError("the block's")
    _add(engine, id=1, name="a", at=AT, doc=None)  # on a new connection
    assert kept.first(kept.prepare(FIND), {"id": 1}).name == "a"
