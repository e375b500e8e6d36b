"""``idp db``: the database schema and its housekeeping."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("db")
def database() -> None:
    """Manage the database schema."""


@database.command("upgrade")
@with_appcontext
def database_upgrade() -> None:
    """Upgrade the schema to the newest revision (the server also does it at start)."""
    from flask import current_app

    from idp.db import current_revision, upgrade_database

    upgrade_database()
    click.echo(f"database schema at revision {current_revision()} "
               f"({current_app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]})")


@database.command("purge")
@with_appcontext
def database_purge() -> None:
    """Delete expired refresh tokens and grants nothing can use any more (run daily)."""
    from idp.authorizations.service import purge_expired
    from idp.runtime import current_runtime

    counts = purge_expired(current_runtime())
    click.echo(f"deleted {counts['refresh_tokens']} expired refresh tokens and "
               f"{counts['grants']} spent grants")
