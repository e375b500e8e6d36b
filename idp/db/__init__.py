"""Schema revisions (Alembic, through Flask-Migrate) and the upgrade at start-up.

Not to be confused with the top-level ``migration/`` package, which folds
legacy user databases into the account space.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import text

from idp.extensions import db

DIRECTORY = str(Path(__file__).parent)
_LOCK_ID = 734_251_901


def upgrade_database() -> None:
    """Upgrade the schema to the newest revision, once even when several
    worker processes start together.

    A file lock under ``instance/`` serialises processes on one machine; on
    PostgreSQL an advisory lock also serialises machines.
    """
    lock_path = Path(current_app.instance_path) / "schema.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect() as conn:
                    conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
                    try:
                        upgrade(directory=DIRECTORY)
                    finally:
                        conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
            else:
                upgrade(directory=DIRECTORY)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def current_revision() -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
