"""The report of a batch (``idp migrate report BATCH``): its counts and
every row it decided, as JSON, CSV or an HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

from sqlalchemy import select

from idp.extensions import db
from idp.runtime import Runtime
from migration.models import LegacyRecord, MigrationBatch
from migration.review import view

#: The columns of a report's rows, in order.
COLUMNS = ("legacy_id", "outcome", "reason", "account", "created_at", "last_login_at")
FORMATS = ("json", "csv", "html")


class ReportError(LookupError):
    """There is no such batch."""


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def batch_summary(batch: MigrationBatch) -> dict[str, Any]:
    """A batch as ``idp migrate status`` and reports show it."""
    return {"batch": batch.id, "department": batch.department, "mapping": batch.mapping,
            "source": batch.source, "encoding": batch.encoding, "state": batch.state,
            "error": batch.error, "started_at": _iso(batch.started_at),
            "finished_at": _iso(batch.finished_at), "counts": json.loads(batch.counts or "{}")}


def build(rt: Runtime, batch_id: int) -> dict[str, Any]:
    """The report of batch ``batch_id``: its summary and, under ``rows``,
    every row it decided (rows it found unchanged were decided by an
    earlier batch and are counted, not listed; rows without a legacy id
    cannot be named and are counted under ``rejected_reasons``).

    :raises ReportError: no such batch.
    """
    batch = db.session.get(MigrationBatch, batch_id)
    if batch is None:
        raise ReportError(f"there is no batch {batch_id}")
    rows = []
    for record in db.session.scalars(select(LegacyRecord).where(
            LegacyRecord.batch_id == batch_id).order_by(LegacyRecord.id)):
        shown = view(rt, record)
        rows.append({"legacy_id": shown.legacy_id, "outcome": shown.outcome,
                     "reason": shown.reason, "account": shown.account,
                     "created_at": _iso(shown.created_at),
                     "last_login_at": _iso(shown.last_login_at)})
    return {**batch_summary(batch), "rows": rows}


def _inert(value):
    """A cell a spreadsheet will not run: text starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return gets a leading ``'`` (OWASP,
    CSV injection); a legacy id comes from the department's data."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def render(report: dict[str, Any], form: str) -> str:
    """``report`` (:func:`build`) as ``json``, ``csv`` or ``html`` text."""
    if form == "json":
        return json.dumps(report, ensure_ascii=False, indent=2)
    if form == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: _inert(value) for key, value in row.items()}
                         for row in report["rows"])
        return out.getvalue()
    head = "".join(f"<th>{html.escape(name)}</th>" for name in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(row[name] or ''))}</td>"
                                    for name in COLUMNS) + "</tr>\n" for row in report["rows"])
    counts = "".join(f"<li>{html.escape(str(key))}: {html.escape(str(value))}</li>"
                     for key, value in report["counts"].items())
    title = html.escape(f"Batch {report['batch']} of department {report['department']}")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title></head><body>\n<h1>{title}</h1>\n"
            f"<p>{html.escape(report['source'])}, {html.escape(report['state'])}</p>\n"
            f"<ul>{counts}</ul>\n<table><thead><tr>{head}</tr></thead><tbody>\n{body}"
            "</tbody></table>\n</body></html>\n")
