"""The identity links' schema revision, on the run's database engine:
SQLite by default, PostgreSQL with ``IDP_TEST_DATABASE_URL``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from idp.extensions import db
from tests.conftest import free_port, fresh_postgres_database, make_settings


def _new_app(tmp_path, database_url: str | None):
    from idp import create_app

    return create_app(make_settings(tmp_path, database_url, free_port()))


def _close(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def fresh_database_url(tmp_path) -> Iterator[str]:
    """An empty database of the run's engine, for schema revisions."""
    base = os.environ.get("IDP_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    with fresh_postgres_database(base) as url:
        yield url


def _identity_links_schema() -> dict | None:
    inspector = sa.inspect(db.engine)
    if "identity_links" not in inspector.get_table_names():
        return None
    return {
        "unique": sorted((c["name"], tuple(c["column_names"]))
                         for c in inspector.get_unique_constraints("identity_links")),
        # PostgreSQL also lists the unique constraint's own index.
        "indexes": sorted(i["name"] for i in inspector.get_indexes("identity_links")
                          if not i.get("duplicates_constraint")),
        "cascade": [fk["options"].get("ondelete")
                    for fk in inspector.get_foreign_keys("identity_links")],
    }


def test_revision_upgrades_downgrades_and_upgrades_again(tmp_path, fresh_database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from flask_migrate import downgrade, upgrade

    from idp.db import DIRECTORY

    app = _new_app(tmp_path, fresh_database_url)  # upgrades the empty database to head
    try:
        with app.app_context():
            expected = {
                "unique": [("uq_identity_links_kind_issuer_value_index",
                            ("kind", "issuer", "value_index"))],
                "indexes": ["ix_identity_links_account_id"],
                "cascade": ["CASCADE"],
            }
            assert _identity_links_schema() == expected
            downgrade(directory=DIRECTORY, revision="0004")
            db.engine.dispose()
            assert _identity_links_schema() is None
            assert "accounts" in sa.inspect(db.engine).get_table_names()
            upgrade(directory=DIRECTORY, revision="head")
            db.engine.dispose()
            assert _identity_links_schema() == expected
            # The revision creates what the model declares.
            with db.engine.connect() as conn:
                drift = compare_metadata(MigrationContext.configure(conn), db.metadata)
            assert [d for d in drift if "identity_links" in repr(d)] == []
    finally:
        _close(app)
