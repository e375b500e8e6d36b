"""Deferred audit events and the end of an ``idp serve`` worker: granian's
workers leave through ``os._exit`` (no ``atexit``), so the bridge writes
the queued events when the worker stops (``WsgiBridge(on_stop=...)``); an
event answered just before a graceful stop (SIGTERM: a deploy, a
scale-down) is written (found by the attack on issue 9's changes).
"""

from __future__ import annotations

import signal
import sqlite3
import uuid

import requests

from tests.serve_support import running_serve


def test_an_event_answered_just_before_sigterm_is_written(tmp_path, database_url):
    if database_url is not None:
        import pytest
        pytest.skip("reads the instance's SQLite file")
    marker = f"attack-{uuid.uuid4().hex[:12]}"
    with running_serve(tmp_path, None, workers=1, threads=2) as served:
        # An unknown client: invalid_client, audited through the deferred
        # writer (client.authentication_failed), answered at once.
        answer = requests.post(f"{served.url}/token", data={
            "grant_type": "client_credentials"}, auth=(marker, "wrong"))
        assert answer.status_code == 401
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(20)
    databases = [p for p in tmp_path.rglob("*.sqlite3") if p.name != "store.sqlite3"]
    assert databases, list(tmp_path.rglob("*"))
    with sqlite3.connect(databases[0]) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM audit_events WHERE event = 'client.authentication_failed'"
            " AND detail LIKE ?", (f"%{marker}%",)).fetchone()[0]
    assert rows == 1, "the audit event answered before the stop was lost"
