"""Recording audit events."""

from __future__ import annotations

import json
import logging
from typing import Any

from idp.audit.models import AuditEvent
from idp.extensions import db

log = logging.getLogger("idp.audit")


def record(
    event: str,
    outcome: str = "success",
    *,
    account_id: int | None = None,
    client_id: str | None = None,
    ip: str | None = None,
    log_line: bool = True,
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
    if log_line:
        log.info(json.dumps({"event": event, "outcome": outcome, "account_id": account_id,
                             "client_id": client_id, "ip": ip, **detail}, default=str))
    return item
