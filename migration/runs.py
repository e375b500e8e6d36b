"""Plans and runs of a mapping: the source read in chunks, each chunk of
rows folded (:mod:`migration.fold`) and committed as one transaction; a
plan is the same fold, rolled back, so its counts are the run's.

A run that stops (Ctrl-C, a killed process, a lost database) keeps every
chunk it committed; the next run of the mapping skips those rows as
unchanged and goes on, so no account is made twice. Its batch is then
marked ``interrupted``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text, update
from sqlalchemy.exc import SQLAlchemyError

from idp import unit_of_work
from idp.audit.service import record as audit
from idp.extensions import db
from idp.runtime import Runtime
from idp.timeutil import utcnow
from migration.fold import Counts, Department, Folder
from migration.mapping import Mapping
from migration.models import MigrationBatch
from migration.rows import read_row
from migration.sources import BATCH_ROWS, open_source, source_name

#: Called after each chunk with the rows read so far.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Outcome:
    """What a plan or run did.

    :ivar batch_id: the run's batch (``idp migrate report``), None for a plan.
    :ivar rows: rows read.
    :ivar encoding: the encoding a file was read in, None for a database.
    """

    batch_id: int | None
    rows: int
    encoding: str | None
    counts: Counts


def _mark_interrupted(department: str) -> None:
    db.session.execute(update(MigrationBatch).where(
        MigrationBatch.department == department, MigrationBatch.state == "running")
        .values(state="interrupted", finished_at=utcnow()))


def fold_mapping(rt: Runtime, mapping: Mapping, *, dry_run: bool, label: str,
                 chunk_rows: int = BATCH_ROWS, progress: Progress | None = None) -> Outcome:
    """Plan (``dry_run``) or run the fold of ``mapping``'s source.

    :param label: the mapping as the operator named it (kept with the batch).
    :param chunk_rows: rows per transaction.
    :raises migration.sources.SourceError: the source cannot be read (a
        run's batch is then ``failed``; committed chunks stay).
    :raises migration.rows.RowError: a row the mapping cannot read.
    """
    counts = Counts()
    batch_id: int | None = None
    rows = chunks = 0
    spreadsheet = mapping.source.file is not None and mapping.source.file.suffix.lower() == ".xlsx"
    try:
        with open_source(mapping, chunk_rows) as source:
            if not dry_run:
                _mark_interrupted(mapping.code)
            # A plan writes its batch and rows like a run, then rolls all
            # of it back.
            batch = MigrationBatch(department=mapping.code, mapping=label,
                                   source=source_name(mapping.source),
                                   encoding=source.encoding, state="running")
            db.session.add(batch)
            db.session.flush()
            if not dry_run:
                batch_id = batch.id
                unit_of_work.commit()
            folder = Folder(rt, Department.of(mapping), batch.id, counts)
            for chunk in source.batches:
                read = []
                for row in chunk:
                    rows += 1
                    read.append(read_row(mapping, row, rows, spreadsheet=spreadsheet))
                folder.fold_chunk(read)
                if batch_id is not None:
                    db.session.execute(update(MigrationBatch).where(
                        MigrationBatch.id == batch_id).values(
                        counts=json.dumps(counts.as_dict())))
                    unit_of_work.commit()
                    chunks += 1
                    if chunks & (chunks - 1) == 0:
                        _analyze()
                else:
                    db.session.flush()
                # The identity map would otherwise hold every row's objects.
                db.session.expunge_all()
                if progress is not None:
                    progress(rows)
            encoding = source.encoding
    except BaseException as exc:
        unit_of_work.rollback()
        if batch_id is not None:
            _finish(batch_id, counts, "failed", describe(exc))
        raise
    if dry_run:
        unit_of_work.rollback()
        return Outcome(None, rows, encoding, counts)
    _finish(batch_id, counts, "finished", None)
    audit("migration.run", department=mapping.code, batch=batch_id, rows=rows,
          **{key: value for key, value in counts.as_dict().items()
             if key != "rejected_reasons"})
    unit_of_work.commit()
    return Outcome(batch_id, rows, encoding, counts)


#: The tables a fold fills, whose statistics PostgreSQL needs while they grow.
_GROWING = ("accounts", "legacy_records", "identity_links", "legacy_credentials",
            "attribute_provenance")


def _analyze() -> None:
    """Refresh PostgreSQL's statistics of the tables the fold fills, after
    the 1st, 2nd, 4th, 8th... chunk: a fold into fresh tables otherwise runs
    for a minute (autovacuum's nap) on plans made for empty tables, whose
    sequential scans make each chunk's lookups slower than the last."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"ANALYZE {', '.join(_GROWING)}"))
        unit_of_work.commit()


def describe(exc: BaseException) -> str:
    """What stopped a run, without the rows' values: a database error's
    own first line, never the statement and parameters SQLAlchemy adds."""
    if isinstance(exc, SQLAlchemyError) and getattr(exc, "orig", None) is not None:
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        return f"{type(exc.orig).__name__}: {first}"
    return f"{type(exc).__name__}: {exc}"


def _finish(batch_id: int, counts: Counts, state: str, error: str | None) -> None:
    db.session.execute(update(MigrationBatch).where(MigrationBatch.id == batch_id).values(
        state=state, error=error, counts=json.dumps(counts.as_dict()),
        finished_at=utcnow()))
    unit_of_work.commit()
