"""Deferred audit writes for events on hot paths.

Token issuance happens hundreds of times a second; a commit per event would
serialise requests on the database (DESIGN.md, Speed). Such events are queued
here and written in batches by one background thread per process. Events that
describe a state change are still written in that change's transaction by
:func:`idp.audit.service.record`.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
import time
from typing import Any

from flask import Flask, has_app_context

from idp import unit_of_work
from idp.audit.models import AuditEvent
from idp.extensions import db
from idp.process_thread import ProcessThread
from idp.timeutil import utcnow

log = logging.getLogger("idp.audit")

#: The columns a deferred row fills (the id is the table's own).
_COLUMNS = tuple(column.name for column in AuditEvent.__table__.columns if column.name != "id")
_COPY = f"COPY {AuditEvent.__tablename__} ({', '.join(_COLUMNS)}) FROM STDIN"


class AuditWriter:
    """Queue audit rows and insert them in batches, in the order they were
    queued: whoever writes (the thread, :meth:`flush`, a caller meeting a
    full queue) drains the queue's head under one lock, so an auditor
    reading by id reads in order. A caller meeting a full queue while its
    own transaction has written (and so holds the database's write lock)
    adds its row to that transaction instead.

    :param app: the application whose database receives the rows.
    :param max_batch: rows per INSERT.
    :param max_queue: queued rows before callers write synchronously instead
        (back-pressure: an event is never dropped).
    :param interval: seconds the thread waits, once a row arrives, for more
        rows to write with it (one INSERT and one commit for all of them,
        instead of a transaction per request under load); :meth:`flush`
        writes at once.
    """

    def __init__(self, app: Flask, max_batch: int = 500, max_queue: int = 20_000,
                 interval: float = 0.2) -> None:
        self._app = app
        self._max_batch = max_batch
        self._interval = interval
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(max_queue)
        #: Held while draining and writing, so batches land in queue order.
        self._writing = threading.Lock()
        #: A batch whose write failed, written again before anything else.
        self._retry: list[dict[str, Any]] = []
        self._arrived = threading.Event()
        self._thread = ProcessThread(self._run, "audit-writer")
        atexit.register(self.flush)

    def submit(self, row: dict[str, Any]) -> None:
        """Queue one event (the columns of :class:`AuditEvent`)."""
        row.setdefault("created_at", utcnow())
        self._thread.ensure_started()
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            if has_app_context() and unit_of_work.wrote():
                # The caller's transaction holds the database's write lock
                # (on SQLite the only one): any other connection would wait
                # for it, the writer thread too. The row goes in with the
                # caller's own writes instead.
                db.session.execute(AuditEvent.__table__.insert(), [row])
                return
            # Back-pressure: the caller writes the queue's head, then its row.
            self._write_queued()
            self._queue.put(row)
        self._arrived.set()

    def _run(self) -> None:
        while True:
            self._arrived.wait()
            time.sleep(self._interval)
            # Cleared before draining: a row queued from now on sets it again.
            self._arrived.clear()
            try:
                self._write_queued()
            except Exception:  # noqa: BLE001 - the writer thread must survive a DB outage
                log.exception("audit batch could not be written; retrying")
                time.sleep(max(self._interval, 1.0))
                self._arrived.set()

    def _write_queued(self) -> None:
        """Write the failed batch, then everything queued, batch by batch.

        :raises Exception: what the database raised; the batch is kept and
            written first next time.
        """
        with self._writing:
            while True:
                batch, self._retry = self._retry, []
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if not batch:
                    return
                try:
                    self._write(batch)
                except Exception:
                    self._retry = batch
                    raise
                for _ in batch:
                    self._queue.task_done()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self._app.app_context():
            connection = db.session.connection()
            if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
                _copy(connection.connection.dbapi_connection, rows)
            else:
                db.session.execute(AuditEvent.__table__.insert(), rows)
            db.session.commit()

    def idle(self) -> bool:
        """Whether nothing is queued or being written (a cheap check)."""
        return self._queue.unfinished_tasks == 0

    def flush(self) -> None:
        """Write everything queued so far, now, in this thread; a batch the
        writer thread is writing is waited for (it is ahead in the order).

        :raises Exception: what the database raised (the rows are kept).
        """
        if not self.idle():
            self._write_queued()


def _copy(connection: Any, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` on PostgreSQL with one ``COPY ... FROM STDIN``, in the
    caller's transaction: the same rows as the INSERT, for less than half
    of its CPU (psycopg's executemany binds each row's parameters apart).

    :param connection: the session's psycopg connection.
    """
    with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
        for row in rows:
            copy.write_row(tuple(
                json.dumps(row.get(name) or {}) if name == "detail" else row.get(name)
                for name in _COLUMNS))
