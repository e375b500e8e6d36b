"""Bulk writes of the fold: many rows of one table in one round trip.

On PostgreSQL the rows go through ``COPY ... FROM STDIN`` (psycopg's copy
protocol), which parses and inserts them several times faster than an
executemany of INSERTs; elsewhere they are one Core executemany. Either
way the rows join the session's transaction, so a chunk still commits or
rolls back as one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from psycopg import sql
from sqlalchemy import ARRAY, Column, ColumnElement, Table, any_, literal, select

from idp.extensions import db

#: Below this many rows COPY's extra statement costs more than it saves.
COPY_MIN_ROWS = 20

#: Values per ``IN (...)`` of a read; on PostgreSQL a read takes them all
#: as one array.
IN_LIST = 500


def add(model, rows: Sequence[dict]) -> None:
    """Insert ``rows`` (dicts with the same keys, column key -> value) into
    ``model``'s table. Columns a row leaves out take their Python-side
    default, as an INSERT would give them.

    :raises sqlalchemy.exc.IntegrityError: a constraint fails (the copy is
        sent as one statement, so nothing of it stays).
    """
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        _copy(connection, model.__table__, rows)
    else:
        # The ORM's bulk insert costs as much Python again, for nothing
        # the fold uses.
        connection.execute(model.__table__.insert(), list(rows))


def insert(model, rows: Sequence[dict], key: Column, *scope) -> dict[str, int]:
    """Insert ``rows`` of ``model`` (as :func:`add`) and read their ids back
    by the unique ``key`` column, within the ``scope`` conditions: two plain
    bulk writes and reads, which the drivers send far faster than an
    ``INSERT ... RETURNING`` of many rows.

    :returns: key value -> id.
    """
    add(model, rows)
    values = [row[key.key] for row in rows]
    ids: dict[str, int] = {}
    for part in parts(values):
        ids.update((value, row_id) for row_id, value in db.session.execute(
            select(model.id, key).where(among(key, part), *scope)))
    return ids


def parts(values: Sequence) -> Iterable[Sequence]:
    """``values`` in the slices that :func:`among` takes: all at once on
    PostgreSQL, else lists of :data:`IN_LIST`, short enough for every
    backend's parameter limit. Nothing for no values."""
    size = len(values) if _postgresql() else IN_LIST
    for start in range(0, len(values), max(size, 1)):
        yield values[start:start + size]


def among(column: Column, values: Sequence) -> ColumnElement[bool]:
    """``column IN values``. On PostgreSQL it is ``column = ANY(array)``
    with the values as one array parameter: the statement stays short and
    the same whatever the count, so neither SQLAlchemy nor psycopg parses
    it again for each chunk (psycopg caches only short statements)."""
    if _postgresql():
        return column == any_(literal(list(values), ARRAY(column.type)))
    return column.in_(values)


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _copy(connection, table: Table, rows: Sequence[dict]) -> None:
    names = list(rows[0])
    # Python-side defaults of the columns the rows leave out, each called
    # per row as an INSERT would (a callable may give a unique value).
    defaults = [column for column in table.columns
                if column.key not in rows[0] and not column.primary_key
                and column.default is not None
                and (column.default.is_scalar or column.default.is_callable)]
    columns = [table.columns[name].name for name in names] + [
        column.name for column in defaults]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns)))
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[name] for name in names] + [
                column.default.arg if column.default.is_scalar else column.default.arg(None)
                for column in defaults])
