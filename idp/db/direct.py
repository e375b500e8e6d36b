"""A few hot statements run on DBAPI connections each thread keeps.

A refresh-token rotation is three short statements: SQLAlchemy's
connection checkout, pre-ping, execution context and check-in cost more
Python than the statements themselves (a SELECT by primary key on SQLite:
120 µs through an engine connection, 6 µs on a kept cursor; on PostgreSQL
the pre-ping is a round trip of its own). :class:`Prepared` compiles a Core
statement once for the engine's dialect, with the bind and result
processors of its types, and :class:`DirectConnections` runs it on a DBAPI
connection each thread keeps for itself, made by the engine's pool (so
with its connect-time settings: WAL and foreign keys on SQLite, the JSON
loaders on PostgreSQL) and then detached from it.

Only what the engine would do for these statements is done: the SQLite
writer queue (:mod:`idp.db.writer_queue`) is taken before a transaction's
first statement and given back after its COMMIT or ROLLBACK; a kept
PostgreSQL connection that turns out broken (the server restarted) is
dropped, and a read or a transaction that fails at its start on it is
tried once more on a new one, as the pool's pre-ping would have done.
A thread's connection is closed when the thread ends, and every kept
connection when the engine is disposed; a forked child never uses nor
closes its parent's.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql import ClauseElement

from idp.db.writer_queue import writer_queue

Processor = Callable[[Any], Any] | None
T = TypeVar("T")


class Row(tuple):
    """A result row whose values are also attributes by column name."""

    __slots__ = ()
    _names: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._names[name]]
        except KeyError:
            raise AttributeError(name) from None


class Prepared:
    """A Core statement compiled once for ``dialect``.

    :param statement: a SELECT, INSERT, UPDATE or DELETE whose values are
        named ``bindparam`` parameters (for an INSERT, the values' keys are
        ``column_keys``) or literals of its own. Column defaults computed in Python are refused:
        they would not run here.
    :param column_keys: the columns an INSERT is given values for.
    :raises ValueError: a statement needing Python-side defaults.
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect,
                 column_keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            raise ValueError("a statement with Python-side defaults cannot run directly")
        self.sql: str = compiled.string
        self._positions: list[str] | None = (list(compiled.positiontup or ())
                                             if compiled.positional else None)
        #: rendered name -> (key of its value, or None for the statement's
        #: own value, that value, the type's bind processor)
        self._binds: dict[str, tuple[str | None, Any, Processor]] = {
            name: (bind.key if bind.required else None,
                   None if bind.required else bind.effective_value,
                   bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in compiled.bind_names.items()}
        selected = getattr(statement, "selected_columns", None)
        is_select = selected is not None and not getattr(statement, "is_dml", False)
        columns = list(selected) if is_select else []
        self._results: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        names = {column.key: index for index, column in enumerate(columns)}
        self._row = type("PreparedRow", (Row,), {"__slots__": (), "_names": names})

    def parameters(self, values: Mapping[str, Any]) -> tuple | dict:
        """``values`` as the DBAPI takes them: bound by each parameter's
        type (SQLite's text timestamps), in the dialect's paramstyle.

        :raises KeyError: a parameter without a value.
        """
        bound = {}
        for name, (key, value, process) in self._binds.items():
            if key is not None:
                value = values[key]
            bound[name] = process(value) if process is not None and value is not None else value
        if self._positions is None:
            return bound
        return tuple(bound[name] for name in self._positions)

    def row(self, raw: Sequence[Any] | None) -> Row | None:
        """A fetched row with each value through its column's result
        processor (SQLite's timestamps and JSON), or None for None."""
        if raw is None:
            return None
        return self._row(value if process is None or value is None else process(value)
                         for process, value in zip(self._results, raw, strict=True))


class Transaction:
    """Statements of one direct transaction (:meth:`DirectConnections.transaction`)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, prepared: Prepared, values: Mapping[str, Any]) -> int:
        """Run ``prepared`` with ``values``.

        :returns: the number of rows it changed (the DBAPI's ``rowcount``).
        """
        self._cursor.execute(prepared.sql, prepared.parameters(values))
        return self._cursor.rowcount

    def first(self, prepared: Prepared, values: Mapping[str, Any]) -> Row | None:
        """The first row of the SELECT ``prepared`` with ``values``, or None."""
        self._cursor.execute(prepared.sql, prepared.parameters(values))
        return prepared.row(self._cursor.fetchone())


class DirectConnections:
    """The DBAPI connections of ``engine`` kept one per thread (see the
    module). SQLite and PostgreSQL (psycopg) only.

    :param engine: the engine whose pool makes the connections.
    :raises ValueError: another database.
    """

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"no direct statements on {engine.dialect.name}")
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        # Reentrant: a thread's connection may be forgotten (its finaliser)
        # while this thread holds the lock.
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._local = threading.local()
        #: Every live kept connection, by its holder's id (closed on dispose).
        self._kept: dict[int, Any] = {}
        #: Moves on dispose: a thread's connection of an older one is gone.
        self._generation = 0
        #: (statement's id, column keys) -> (statement, its Prepared); the
        #: statement is held so that its id stays its own.
        self._prepared: dict[tuple[int, tuple[str, ...] | None],
                             tuple[ClauseElement, Prepared]] = {}

    def prepare(self, statement: ClauseElement,
                column_keys: Sequence[str] | None = None) -> Prepared:
        """``statement`` compiled for this engine's dialect, once.

        :param column_keys: as for :class:`Prepared`.
        """
        key = (id(statement), tuple(column_keys) if column_keys is not None else None)
        held = self._prepared.get(key)
        if held is None:
            held = self._prepared[key] = (
                statement, Prepared(statement, self._engine.dialect, column_keys))
        return held[1]

    def first(self, prepared: Prepared, values: Mapping[str, Any]) -> Row | None:
        """The first row of the SELECT ``prepared``, read outside any
        transaction (autocommit).

        :raises Exception: the DBAPI's error, after one more try on a new
            connection when a kept one was found broken.
        """
        def read(connection: Any) -> Row | None:
            cursor = connection.cursor()
            try:
                return Transaction(cursor).first(prepared, values)
            finally:
                cursor.close()

        return self._on_kept_connection(read)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction on this thread's connection: committed when the
        block ends, rolled back when it raises (the exception goes on). On
        SQLite the writer queue is held from the start to the end.

        :raises Exception: the DBAPI's error, or the block's.
        """
        queue = writer_queue(self._engine) if self._sqlite else None
        if queue is not None:
            queue.acquire()
        try:
            connection, cursor = self._begin()
            try:
                yield Transaction(cursor)
                connection.commit()
            except BaseException:
                try:
                    connection.rollback()
                except Exception:
                    self._drop(connection)
                else:
                    self._drop_if_broken(connection)
                raise
            finally:
                # Never in place of the block's error: the connection may
                # have been dropped (closed) above.
                with suppress(Exception):
                    cursor.close()
        finally:
            if queue is not None:
                queue.release()

    def _begin(self) -> tuple[Any, Any]:
        """This thread's connection in a new transaction, and a cursor."""

        def begin(connection: Any) -> tuple[Any, Any]:
            cursor = connection.cursor()
            cursor.execute("BEGIN")
            return connection, cursor

        return self._on_kept_connection(begin)

    def _on_kept_connection(self, run: Callable[[Any], T]) -> T:
        """``run`` on this thread's connection; once more on a new one when
        the kept one turns out broken (what the pool's pre-ping does)."""
        for retry in (True, False):
            connection, fresh = self._connection()
            try:
                return run(connection)
            except Exception as exc:
                if not self._drop_if_broken(connection, exc) or fresh or not retry:
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> tuple[Any, bool]:
        """This thread's DBAPI connection (in autocommit mode, transactions
        being begun explicitly), and whether it was made just now."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # The parent's sockets are not ours to use or to close.
                    _orphans.extend(self._kept.values())
                    self._pid, self._kept = os.getpid(), {}
                    self._generation += 1
        held = getattr(self._local, "held", None)
        if held is not None and held.generation == self._generation:
            return held.connection, False
        proxied = self._engine.raw_connection()
        proxied.detach()
        connection = proxied.dbapi_connection
        if self._sqlite:
            connection.isolation_level = None
        else:
            connection.autocommit = True
        held = self._local.held = _Held(connection, self._generation)
        with self._lock:
            self._kept[id(held)] = connection
        # A thread that ends drops its local values, and the connection
        # with them: never more kept connections than live threads.
        weakref.finalize(held, self._forget, id(held), connection, os.getpid())
        return connection, True

    def _forget(self, key: int, connection: Any, pid: int) -> None:
        """Close the connection of a thread that ended (or dropped it)."""
        orphaned = any(orphan is connection for orphan in _orphans)
        if pid != os.getpid() or orphaned:
            if not orphaned:
                _orphans.append(connection)  # the parent's: never closed here
            return
        with self._lock:
            if self._kept.get(key) is connection:
                del self._kept[key]
        with suppress(Exception):  # already gone with its socket
            connection.close()

    def _drop_if_broken(self, connection: Any, error: BaseException | None = None) -> bool:
        """Drop ``connection`` when it can serve no more; True if dropped.
        A PostgreSQL connection whose backend was terminated can raise
        ``OperationalError`` ("connection socket closed") before psycopg
        marks it broken, so that error counts as broken there too."""
        lost = (error is not None and self._engine.dialect.name == "postgresql"
                and isinstance(error, self._engine.dialect.dbapi.OperationalError))
        if lost or getattr(connection, "broken", False) or getattr(connection, "closed", False):
            self._drop(connection)
            return True
        return False

    def _drop(self, connection: Any) -> None:
        """Stop keeping this thread's ``connection`` and close it."""
        held = getattr(self._local, "held", None)
        if held is not None and held.connection is connection:
            self._local.held = None
        with self._lock:
            for key, kept in list(self._kept.items()):
                if kept is connection:
                    del self._kept[key]
        with suppress(Exception):  # already gone with its socket
            connection.close()

    def close(self) -> None:
        """Close every connection kept (the engine is being disposed); each
        thread makes a new one at its next statement."""
        with self._lock:
            kept = list(self._kept.values()) if self._pid == os.getpid() else []
            self._kept = {}
            self._generation += 1
        for connection in kept:
            with suppress(Exception):  # already gone with its socket
                connection.close()


class _Held:
    """A thread's kept connection, in its ``threading.local``."""

    __slots__ = ("__weakref__", "connection", "generation")

    def __init__(self, connection: Any, generation: int) -> None:
        self.connection = connection
        self.generation = generation


#: Connections a forked child found kept by its parent: never used nor closed.
_orphans: list[Any] = []
_direct: weakref.WeakKeyDictionary[Engine, DirectConnections] = weakref.WeakKeyDictionary()
_direct_lock = threading.Lock()


def direct(engine: Engine) -> DirectConnections:
    """The :class:`DirectConnections` of ``engine`` (one per engine),
    closed with the engine's ``dispose()``.

    :raises ValueError: an engine of a database other than SQLite or PostgreSQL.
    """
    connections = _direct.get(engine)
    if connections is None:
        with _direct_lock:
            connections = _direct.get(engine)
            if connections is None:
                connections = _direct[engine] = DirectConnections(engine)
                event.listen(engine, "engine_disposed", lambda _engine: connections.close())
    return connections
