"""Group commit (:mod:`idp.db.group_commit`): the work of threads waiting
at the same moment is committed in one transaction, each gets its own
result, a failure fails its batch alone, and nobody waits for company."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, create_engine
from sqlalchemy.dialects import sqlite

from idp.db.direct import Prepared, direct
from idp.db.group_commit import GroupCommit, group_commit

metadata = MetaData()
rows = Table("rows", metadata, Column("id", Integer, primary_key=True))


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    metadata.create_all(engine)
    commits = []
    connections = direct(engine)
    transaction = connections.transaction

    def counted():
        commits.append(1)
        return transaction()

    connections.transaction = counted
    engine.commits = commits
    yield engine
    engine.dispose()


_INSERT = Prepared(sa.insert(rows).values(id=bindparam("id")), sqlite.dialect())


def _insert(value: int):
    def work(transaction):
        transaction.execute(_INSERT, {"id": value})
        return value
    return work



def _stored(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(rows.c.id).order_by(rows.c.id)))


def test_a_lone_thread_commits_at_once(engine):
    assert GroupCommit(engine).run(_insert(1)) == 1
    assert _stored(engine) == [1] and len(engine.commits) == 1


def test_threads_waiting_together_share_one_commit(engine):
    group, waiting = GroupCommit(engine), 8
    entered, go = threading.Event(), threading.Event()

    def first(conn):
        entered.set()
        assert go.wait(10)  # the others arrive while this batch runs
        _insert(0)(conn)
        return "first"

    with ThreadPoolExecutor(waiting + 1) as pool:
        leader = pool.submit(group.run, first)
        assert entered.wait(10)
        followers = [pool.submit(group.run, _insert(i)) for i in range(1, waiting + 1)]
        while len(group._waiting) < waiting:
            threading.Event().wait(0.005)
        go.set()
        assert leader.result(10) == "first"
        assert [f.result(10) for f in followers] == list(range(1, waiting + 1))
    assert _stored(engine) == list(range(waiting + 1))
    assert len(engine.commits) == 2  # the leader's batch, then all the others'


def test_a_failing_work_fails_its_batch_alone(engine):
    group = GroupCommit(engine)
    group.run(_insert(5))
    entered, go = threading.Event(), threading.Event()

    def hold(conn):
        entered.set()
        assert go.wait(10)
        return "held"

    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(group.run, hold)
        assert entered.wait(10)
        fine, duplicate = pool.submit(group.run, _insert(6)), pool.submit(group.run, _insert(5))
        while len(group._waiting) < 2:
            threading.Event().wait(0.005)
        go.set()
        assert held.result(10) == "held"
        # One batch: the duplicate key fails it, so the other row is not kept either.
        for future in (fine, duplicate):
            with pytest.raises(sqlite3.IntegrityError):
                future.result(10)
    assert _stored(engine) == [5]
    assert group.run(_insert(7)) == 7  # the next batch goes on
    assert _stored(engine) == [5, 7]


def test_a_batch_runs_its_work_in_key_order(engine):
    group, order = GroupCommit(engine), []
    entered, go = threading.Event(), threading.Event()

    def hold(conn):
        entered.set()
        assert go.wait(10)

    def note(key):
        return lambda conn: order.append(key)

    with ThreadPoolExecutor(5) as pool:
        pool.submit(group.run, hold)
        assert entered.wait(10)
        futures = [pool.submit(group.run, note(key), key) for key in (30, 10, 20, 40)]
        while len(group._waiting) < 4:
            threading.Event().wait(0.005)
        go.set()
        for future in futures:
            future.result(10)
    assert order == [10, 20, 30, 40]


def test_many_threads_each_get_their_own_result(engine):
    group = group_commit(engine)
    assert group_commit(engine) is group
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: group.run(_insert(i), i), range(200)))
    assert results == list(range(200))
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(rows)) == 200
