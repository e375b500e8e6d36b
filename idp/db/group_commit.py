"""Group commit: the small write transactions of many threads of a process
committed as one.

A refresh-token rotation writes two rows and commits. On SQLite every such
transaction holds the database's one write lock for its statements and its
COMMIT, so under load rotations queue for it one by one; on PostgreSQL each
pays its own BEGIN, COMMIT and WAL flush. :class:`GroupCommit` lets the
rotations that wait at the same moment share one transaction: the first
thread to arrive leads, runs every waiting piece of work in one transaction
on its own connection and commits once; the threads that arrived meanwhile
wait for that commit (or lead the next batch). Nothing waits for company:
a thread alone commits at once.

Each piece of work is a function of a :class:`~idp.db.direct.Transaction`
(the leader's kept DBAPI connection, :mod:`idp.db.direct`) made of
statements that decide by themselves (a conditional UPDATE and what follows
from its row count), so one piece's outcome never depends on another's
failing. A statement that raises fails the whole batch: it is rolled back
and every thread of it gets the exception, as if its own transaction had
failed.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Engine

from idp.db.direct import Transaction, direct

T = TypeVar("T")


class _Work(Generic[T]):
    """One thread's piece of a batch and, once the batch is over, its outcome."""

    __slots__ = ("done", "error", "key", "lead", "result", "work")

    def __init__(self, work: Callable[[Transaction], T], key: Any) -> None:
        self.work = work
        self.key = key
        self.done = threading.Event()
        #: Set by the leader before ``done``: this thread leads the next batch.
        self.lead = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Batches of work committed together on ``engine`` (see the module).

    :param engine: where the batches are written (SQLite or PostgreSQL).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._waiting: list[_Work[Any]] = []
        self._leading = False

    def run(self, work: Callable[[Transaction], T], key: Any = 0) -> T:
        """Run ``work`` in the next batch's transaction and return its
        result once that transaction has committed.

        :param work: statements of the given transaction; it must not commit.
        :param key: the batch runs its work in ascending ``key`` order (the
            row the work locks first), so that two batches of two processes
            never lock the same rows in opposite orders.
        :returns: what ``work`` returned.
        :raises Exception: what any work of the batch, or its COMMIT, raised.
        """
        item = _Work(work, key)
        with self._lock:
            if self._pid != os.getpid():  # a forked worker: the parent's batch is not ours
                self._pid, self._waiting, self._leading = os.getpid(), [], False
            self._waiting.append(item)
            lead = not self._leading
            self._leading = True
        if not lead:
            item.done.wait()
            if not item.lead:
                return _outcome(item)
        self._commit_batch()
        return _outcome(item)

    def _commit_batch(self) -> None:
        """Take every waiting piece of work, run them in one transaction,
        commit, wake their threads, and hand the lead to a thread that
        arrived meanwhile."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            with direct(self._engine).transaction() as transaction:
                for item in sorted(batch, key=lambda item: item.key):
                    item.result = item.work(transaction)
        except BaseException as exc:
            for item in batch:
                item.error = exc
        with self._lock:
            following = self._waiting[0] if self._waiting else None
            if following is None:
                self._leading = False
            else:
                following.lead = True
        for item in batch:
            item.done.set()
        if following is not None:
            following.done.set()


def _outcome(item: _Work[T]) -> T:
    if item.error is not None:
        raise item.error
    return item.result  # type: ignore[return-value]


_batches: weakref.WeakKeyDictionary[Engine, GroupCommit] = weakref.WeakKeyDictionary()
_batches_lock = threading.Lock()


def group_commit(engine: Engine) -> GroupCommit:
    """The :class:`GroupCommit` of ``engine`` (one per engine and process)."""
    batches = _batches.get(engine)
    if batches is None:
        with _batches_lock:
            batches = _batches.setdefault(engine, GroupCommit(engine))
    return batches
