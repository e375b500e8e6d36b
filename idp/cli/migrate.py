"""``idp migrate``: fold departments' legacy user databases into the
account space (docs/migration.md). Every command takes ``--json``."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

import click
from flask.cli import with_appcontext


@click.group()
def migrate() -> None:
    """Fold legacy user databases into the provider's accounts."""


_JSON = click.option("--json", "as_json", is_flag=True, help="Answer in JSON.")
_OPERATOR = click.option("--operator", default=getpass.getuser, show_default="login name",
                         help="Who acts (kept in the audit trail).")
_MAPPING = click.argument("mapping_path", metavar="MAPPING",
                          type=click.Path(dir_okay=False))
_CHUNK = click.option("--batch-rows", type=click.IntRange(1, 100_000), default=1000,
                      show_default=True, help="Rows per transaction.")


def _load(mapping_path: str):
    from migration.mapping import MappingError, load_mapping

    try:
        return load_mapping(mapping_path)
    except MappingError as exc:
        raise click.ClickException(str(exc)) from None


def _fold(mapping_path: str, *, dry_run: bool, batch_rows: int, show_progress: bool):
    from idp.runtime import current_runtime
    from migration.rows import RowError
    from migration.runs import fold_mapping
    from migration.sources import SourceError, count_rows

    mapping = _load(mapping_path)
    try:
        if not show_progress:
            return fold_mapping(current_runtime(), mapping, dry_run=dry_run,
                                label=mapping_path, chunk_rows=batch_rows)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        # On standard error, so the answer on standard output stays clean.
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(),
                      TextColumn("ETA"), TimeRemainingColumn(), transient=False,
                      console=Console(stderr=True)) as progress:
            task = progress.add_task("plan" if dry_run else "run",
                                     total=count_rows(mapping), rate="-")

            def advance(rows: int) -> None:
                speed = progress.tasks[task].speed
                progress.update(task, completed=rows,
                                rate=f"{speed:,.0f}" if speed else "-")

            return fold_mapping(current_runtime(), mapping, dry_run=dry_run,
                                label=mapping_path, chunk_rows=batch_rows, progress=advance)
    except (SourceError, RowError) as exc:
        raise click.ClickException(_stopped(str(exc), dry_run)) from None
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as exc:  # noqa: BLE001 - said with what it left behind, then exit 1
        from migration.runs import describe

        raise click.ClickException(_stopped(describe(exc), dry_run)) from None


def _stopped(problem: str, dry_run: bool) -> str:
    """The message of a plan or run that stopped: a plan wrote nothing; a
    run keeps the batches it committed and the next run goes on after them."""
    if dry_run:
        return f"{problem} (plan only: nothing was written)"
    return (f"{problem}\nThe batches of rows committed before it stay (idp migrate "
            "status); run the mapping again to go on after them.")


def _counts(outcome) -> dict[str, Any]:
    answer = outcome.counts.as_dict()
    answer.update(rows=outcome.rows, encoding=outcome.encoding)
    return answer


def _echo_counts(answer: dict[str, Any]) -> None:
    for key in ("rows", "new", "matched", "conflicts", "proposals", "rejected", "tombstones",
                "unchanged", "updated", "written"):
        click.echo(f"{key}: {answer[key]}")
    for reason, number in sorted(answer["rejected_reasons"].items()):
        click.echo(f"  rejected for {reason}: {number}")
    if answer.get("encoding"):
        click.echo(f"encoding: {answer['encoding']}")


def _shows_progress(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


@migrate.command("plan")
@_MAPPING
@_CHUNK
@_JSON
@with_appcontext
def migrate_plan(mapping_path: str, batch_rows: int, as_json: bool) -> None:
    """Check MAPPING and count what a run would do, writing nothing."""
    outcome = _fold(mapping_path, dry_run=True, batch_rows=batch_rows,
                    show_progress=_shows_progress(as_json))
    answer = _counts(outcome)
    answer["written"] = 0
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False))
    else:
        _echo_counts(answer)
        click.echo("plan only: nothing was written")


@migrate.command("run")
@_MAPPING
@_CHUNK
@_JSON
@with_appcontext
def migrate_run(mapping_path: str, batch_rows: int, as_json: bool) -> None:
    """Fold MAPPING's rows into the accounts, one transaction per batch of
    rows; a second run writes nothing, a stopped run resumes."""
    outcome = _fold(mapping_path, dry_run=False, batch_rows=batch_rows,
                    show_progress=_shows_progress(as_json))
    answer = {"batch": outcome.batch_id, **_counts(outcome)}
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False))
        return
    click.echo(f"batch: {outcome.batch_id}")
    _echo_counts(answer)
    if not answer["written"]:
        click.echo("nothing to write: every row was folded before")


@migrate.command("status")
@_JSON
@with_appcontext
def migrate_status(as_json: bool) -> None:
    """The batches (runs), newest first."""
    from sqlalchemy import select

    from idp.extensions import db
    from migration.models import MigrationBatch
    from migration.report import batch_summary

    batches = [batch_summary(batch) for batch in db.session.scalars(
        select(MigrationBatch).order_by(MigrationBatch.id.desc()))]
    if as_json:
        click.echo(json.dumps(batches, ensure_ascii=False))
        return
    if not batches:
        click.echo("no batch has run")
    for item in batches:
        counts = item["counts"]
        click.echo(f"{item['batch']}\t{item['department']}\t{item['state']}\t"
                   f"{item['started_at']}\tnew {counts.get('new', 0)}, matched "
                   f"{counts.get('matched', 0)}, conflicts {counts.get('conflicts', 0)}, "
                   f"rejected {counts.get('rejected', 0)}, tombstones "
                   f"{counts.get('tombstones', 0)}\t{item['mapping']}")


@migrate.command("report")
@click.argument("batch_id", metavar="BATCH", type=int)
@click.option("--format", "form", type=click.Choice(["html", "json", "csv"]), default="json",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
@with_appcontext
def migrate_report(batch_id: int, form: str, output: str | None) -> None:
    """Every row BATCH decided: imported, merged, conflict, rejected (with
    the reason) or tombstone."""
    from idp.runtime import current_runtime
    from migration.report import ReportError, build, render

    try:
        text = render(build(current_runtime(), batch_id), form)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    if output:
        with open(output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        click.echo(text, nl=False)


@migrate.command("conflicts")
@click.option("--all", "everything", is_flag=True, help="Resolved ones too.")
@_JSON
@with_appcontext
def migrate_conflicts(everything: bool, as_json: bool) -> None:
    """The rows waiting for review."""
    from idp.runtime import current_runtime
    from migration.review import list_conflicts

    items = list_conflicts(current_runtime(), everything=everything)
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False))
        return
    if not items:
        click.echo("no conflict waits for review")
    for item in items:
        click.echo(f"{item['id']}\t{item['kind']}\t{item['state']}\t{item['department']} "
                   f"{item['legacy_id']}\t-> {item['account'] or '-'}"
                   f"\t(row's account: {item['record_account'] or '-'})")


@migrate.command("resolve")
@click.argument("conflict_id", metavar="CONFLICT", type=int)
@click.option("--merge", "decision", flag_value="merge", help="The same person: merge.")
@click.option("--keep-apart", "decision", flag_value="keep_apart",
              help="Different people: keep them apart.")
@_OPERATOR
@_JSON
@with_appcontext
def migrate_resolve(conflict_id: int, decision: str | None, operator: str,
                    as_json: bool) -> None:
    """Resolve CONFLICT: --merge or --keep-apart."""
    from idp.runtime import current_runtime
    from migration.review import ReviewError, resolve

    if decision is None:
        raise click.UsageError("say --merge or --keep-apart")
    try:
        done = resolve(current_runtime(), conflict_id, merge=decision == "merge",
                       operator=operator)
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"conflict": conflict_id, "decision": decision, "done": done}))
    else:
        click.echo(f"conflict {conflict_id}: {done}")


@migrate.command("undo-merge")
@click.argument("identifier", metavar="ACCOUNT")
@_OPERATOR
@_JSON
@with_appcontext
def migrate_undo_merge(identifier: str, operator: str, as_json: bool) -> None:
    """Split the legacy rows merged into ACCOUNT back into accounts of
    their own."""
    from idp.cli.users import find_account
    from idp.runtime import current_runtime
    from migration.review import ReviewError, undo_merge

    account = find_account(identifier)
    try:
        made = undo_merge(current_runtime(), account, operator)
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from None
    answer = [{"username": item.username, "public_sub": item.subject} for item in made]
    if as_json:
        click.echo(json.dumps({"account": account.username, "split": answer}))
    else:
        for item in answer:
            click.echo(f"split out {item['username']} (sub {item['public_sub']})")


@migrate.command("links")
@click.argument("department")
@click.argument("legacy_id")
@_JSON
@with_appcontext
def migrate_links(department: str, legacy_id: str, as_json: bool) -> None:
    """Which account DEPARTMENT's LEGACY_ID became (a tombstone too)."""
    from idp.runtime import current_runtime
    from migration.review import ReviewError, find_record, view

    rt = current_runtime()
    try:
        record = find_record(rt, department, legacy_id)
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from None
    if record is None:
        raise click.ClickException(f"{department} {legacy_id} was never folded")
    shown = view(rt, record)
    answer = {"department": shown.department, "legacy_id": shown.legacy_id,
              "outcome": shown.outcome, "reason": shown.reason, "account": shown.account,
              "public_sub": shown.subject, "batch": shown.batch_id,
              "created_at": shown.created_at.isoformat() + "Z" if shown.created_at else None,
              "last_login_at": (shown.last_login_at.isoformat() + "Z"
                                if shown.last_login_at else None)}
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False))
    else:
        for key, value in answer.items():
            click.echo(f"{key}: {value}")
