"""Recording audit events."""

from __future__ import annotations

import json
import logging
from typing import Any

from idp.audit.models import AuditEvent
from idp.audit.writer import AuditWriter
from idp.extensions import db

log = logging.getLogger("idp.audit")


def _log(event: str, outcome: str, account_id: int | None, client_id: str | None,
         ip: str | None, detail: dict[str, Any]) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"event": event, "outcome": outcome, "account_id": account_id,
                             "client_id": client_id, "ip": ip, **detail}, default=str))


def record(
    event: str,
    outcome: str = "success",
    *,
    account_id: int | None = None,
    client_id: str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to the current database transaction.

    The caller commits it together with the change it describes, so an event
    exists exactly when the change does.

    :param event: dotted event type, e.g. ``login.failure``.
    :param outcome: ``success`` or ``failure``.
    :param detail: JSON-serialisable extra fields (no secrets).
    :returns: the pending :class:`AuditEvent`.
    """
    item = AuditEvent(
        event=event, outcome=outcome, account_id=account_id, client_id=client_id,
        ip=ip, detail=detail,
    )
    db.session.add(item)
    _log(event, outcome, account_id, client_id, ip, detail)
    return item


def record_deferred(
    writer: AuditWriter,
    event: str,
    outcome: str = "success",
    *,
    account_id: int | None = None,
    client_id: str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> None:
    """Log and queue an audit event that accompanies no database change
    (token issuance, introspection), so it does not cost the request a commit.

    :param writer: the application's :class:`AuditWriter`.
    """
    _log(event, outcome, account_id, client_id, ip, detail)
    writer.submit({"event": event, "outcome": outcome, "account_id": account_id,
                   "client_id": client_id, "ip": ip, "detail": detail})
