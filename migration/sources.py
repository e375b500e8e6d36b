"""Legacy sources read in batches: a table or query of any database
SQLAlchemy reaches, a CSV file or an XLSX file (docs/migration.md,
"Sources").

Rows are streamed: a database cursor on the server side, a file line by
line, so memory stays flat whatever the source's size. Every source first
gives its column names, checked against the mapping before any row is
read (case M-TXT-3); a row is a dict of source column -> value as the
source holds it (text from a CSV file; the driver's types from a
database; from an XLSX file text, with numbers as
:class:`~migration.cells.NumberCell` text, never a float).
"""

from __future__ import annotations

import codecs
import csv
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import sqlalchemy as sa
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy.exc import SQLAlchemyError

from migration.cells import NumberCell
from migration.mapping import Mapping, Source

#: Rows per batch unless the caller says otherwise.
BATCH_ROWS = 1_000
#: Bytes read at a time while telling a file's encoding.
_CHUNK = 1 << 16

Row = dict[str, Any]


class SourceError(ValueError):
    """A source that cannot be read as the mapping says: unreachable,
    missing a column, or holding bytes its encoding cannot decode (the
    message names the line)."""


@dataclass
class Opened:
    """A source being read.

    :ivar columns: the source's column names, in its order.
    :ivar encoding: the encoding a file was read in (told by its BOM, or
        UTF-8 when all of it decodes so, else GB18030), or None for a
        database.
    :ivar batches: the rows, in lists of at most ``batch_rows``.
    """

    columns: list[str]
    encoding: str | None
    batches: Iterator[list[Row]]


@contextmanager
def open_source(mapping: Mapping, batch_rows: int = BATCH_ROWS) -> Iterator[Opened]:
    """Open ``mapping``'s source and check that it has every column the
    mapping names, before any row is read.

    :raises SourceError: the source cannot be opened or read, or lacks a
        column (all the missing ones are named).
    """
    source = mapping.source
    if source.url is not None:
        opened = _database(source, batch_rows)
    elif source.file.suffix.lower() == ".csv":
        opened = _csv(source, batch_rows)
    else:
        opened = _xlsx(source, batch_rows)
    with opened as reading:
        missing = [column for column in mapping.columns.values()
                   if column not in reading.columns]
        if missing:
            raise SourceError(f"{source_name(source)}: missing column(s) {', '.join(missing)} "
                              f"(it has {', '.join(reading.columns)})")
        yield reading


def source_name(source: Source) -> str:
    if source.url is not None:
        return sa.engine.make_url(source.url).render_as_string(hide_password=True)
    return str(source.file)


@contextmanager
def _database(source: Source, batch_rows: int) -> Iterator[Opened]:
    name = source_name(source)
    try:
        engine = sa.create_engine(source.url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise SourceError(f"{name}: {exc}") from None
    try:
        with engine.connect() as conn:
            statement = (sa.text(source.query) if source.query is not None
                         else sa.select(sa.text("*")).select_from(sa.table(source.table)))
            result = conn.execution_options(stream_results=True,
                                            yield_per=batch_rows).execute(statement)
            columns = list(result.keys())

            def batches() -> Iterator[list[Row]]:
                try:
                    for partition in result.partitions(batch_rows):
                        yield [dict(zip(columns, row, strict=True)) for row in partition]
                except SQLAlchemyError as exc:
                    raise SourceError(f"{name}: {exc.__class__.__name__}: "
                                      f"{getattr(exc, 'orig', exc)}") from None

            try:
                yield Opened(columns, None, batches())
            finally:
                # A server-side cursor left open would be read again when
                # collected, after its connection has gone.
                result.close()
    except SQLAlchemyError as exc:
        raise SourceError(f"{name}: {exc.__class__.__name__}: {getattr(exc, 'orig', exc)}") \
            from None
    finally:
        engine.dispose()


def tell_encoding(path: Path, declared: str) -> str:
    """The encoding ``path`` is read in: ``declared``, or for ``auto`` a
    UTF-8 byte-order mark's ``utf-8-sig``, else ``utf-8`` when the whole
    file decodes as UTF-8, else ``gb18030`` (which holds GBK). Read in
    chunks; nothing is kept.

    :raises SourceError: the file cannot be read.
    """
    if declared != "auto":
        return "utf-8-sig" if declared == "utf-8" else declared
    try:
        with path.open("rb") as stream:
            if stream.read(3) == codecs.BOM_UTF8:
                return "utf-8-sig"
            stream.seek(0)
            decoder = codecs.getincrementaldecoder("utf-8")("strict")
            while chunk := stream.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "gb18030"
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return "utf-8"


@contextmanager
def _csv(source: Source, batch_rows: int) -> Iterator[Opened]:
    path = source.file
    encoding = tell_encoding(path, source.encoding)
    try:
        stream = path.open(encoding=encoding, errors="strict", newline="")
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    with stream:
        reader = csv.reader(stream)
        header = _next_line(reader, path, encoding)
        if header is None:
            raise SourceError(f"{path}: is empty: no header line")
        columns = [column.strip() for column in header]

        def batches() -> Iterator[list[Row]]:
            batch: list[Row] = []
            while (line := _next_line(reader, path, encoding)) is not None:
                if not any(cell.strip() for cell in line):
                    continue
                if len(line) != len(columns):
                    raise SourceError(f"{path}: line {reader.line_num}: {len(line)} fields "
                                      f"where the header has {len(columns)}")
                batch.append(dict(zip(columns, line, strict=True)))
                if len(batch) == batch_rows:
                    yield batch
                    batch = []
            if batch:
                yield batch

        yield Opened(columns, encoding.removesuffix("-sig"), batches())


def _undecodable_line(path: Path, encoding: str) -> int:
    """The number of the first line of ``path`` that ``encoding`` cannot
    decode (a newline byte is never part of a UTF-8 or GB18030 character,
    so lines decode apart)."""
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return number
    return 0


def _next_line(reader: Any, path: Path, encoding: str) -> Sequence[str] | None:
    """The next line of ``reader``, or None at the end.

    :raises SourceError: bytes the encoding cannot decode, with the line
        (case M-TXT-2: nothing is decoded with errors ignored).
    """
    try:
        return next(reader)
    except StopIteration:
        return None
    except UnicodeDecodeError:
        # The reader decodes ahead of the line it parses: find the line.
        raise SourceError(f"{path}: line {_undecodable_line(path, encoding)}: bytes that "
                          f"are not {encoding.removesuffix('-sig')}") from None
    except csv.Error as exc:
        raise SourceError(f"{path}: line {reader.line_num}: {exc}") from None


@contextmanager
def _xlsx(source: Source, batch_rows: int) -> Iterator[Opened]:
    path = source.file
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, InvalidFileException, KeyError) as exc:
        raise SourceError(f"{path}: is not a readable XLSX file: {exc}") from None
    try:
        if source.sheet is not None and source.sheet not in book.sheetnames:
            raise SourceError(f"{path}: has no sheet {source.sheet!r} "
                              f"(it has {', '.join(book.sheetnames)})")
        sheet = book[source.sheet] if source.sheet is not None else book.worksheets[0]
        # A sheet's stored dimension can claim 1,048,576 rows of 16,384
        # columns in a file of a few bytes: the rows present are read.
        sheet.reset_dimensions()
        lines = sheet.iter_rows(values_only=True)
        header = next(lines, None)
        if header is None:
            raise SourceError(f"{path}: the sheet is empty: no header row")
        columns = [_cell(value) or "" for value in header]
        while columns and not columns[-1]:
            columns.pop()

        def batches() -> Iterator[list[Row]]:
            batch: list[Row] = []
            for number, line in enumerate(lines, start=2):
                cells = [_cell(value) for value in line]
                if any(cell not in (None, "") for cell in cells[len(columns):]):
                    raise SourceError(f"{path}: row {number}: values beyond the header's "
                                      f"{len(columns)} columns")
                if all(cell in (None, "") for cell in cells):
                    continue
                cells += [None] * (len(columns) - len(cells))
                batch.append(dict(zip(columns, cells[:len(columns)], strict=True)))
                if len(batch) == batch_rows:
                    yield batch
                    batch = []
            if batch:
                yield batch

        yield Opened([str(column).strip() for column in columns], None, batches())
    finally:
        book.close()


def _cell(value: Any) -> Any:
    """A cell's value as text, a number as :class:`NumberCell` text (never
    a float), a date as the datetime it holds."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return NumberCell.of(value)
    return value


def count_rows(mapping: Mapping) -> int | None:
    """About how many rows ``mapping``'s source holds, for a progress bar's
    ETA: a database's ``count(*)``, a CSV file's lines after the header
    (a quoted value over several lines counts more than once), an XLSX
    sheet's last row; None when it cannot be told cheaply or the source
    cannot be read (the run then says so itself)."""
    source = mapping.source
    try:
        if source.url is not None:
            engine = sa.create_engine(source.url)
            try:
                inner = (sa.text(source.query).columns() if source.query is not None
                         else sa.table(source.table))
                statement = sa.select(sa.func.count()).select_from(
                    inner.subquery() if source.query is not None else inner)
                with engine.connect() as conn:
                    return conn.execute(statement).scalar_one()
            finally:
                engine.dispose()
        if source.file.suffix.lower() == ".csv":
            with source.file.open("rb") as stream:
                return max(sum(chunk.count(b"\n") for chunk in iter(
                    lambda: stream.read(_CHUNK), b"")) - 1, 0)
    except (SQLAlchemyError, OSError, ImportError, ValueError):
        return None
    return None
