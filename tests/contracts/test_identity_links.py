"""Contract of identity links (idp.accounts.links) and their schema revision,
on the run's database: SQLite by default, PostgreSQL with
``IDP_TEST_DATABASE_URL``. Service calls only, no HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from idp.accounts import links
from idp.accounts.links import LinkError
from idp.accounts.models import Account
from idp.accounts.pii import PiiError
from idp.extensions import db
from tests.conftest import free_port, fresh_postgres_database, make_settings

UPSTREAM = "https://id.upstream.example"


def _new_app(tmp_path, database_url: str | None):
    from idp import create_app

    return create_app(make_settings(tmp_path, database_url, free_port()))


def _close(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def app(tmp_path_factory, database_url):
    app = _new_app(tmp_path_factory.mktemp("links"), database_url)
    yield app
    _close(app)


@pytest.fixture
def rt(app) -> Iterator:
    """The runtime, inside an application context whose session is rolled
    back afterwards (what a test did not commit is not kept)."""
    with app.app_context():
        yield app.extensions["idp"]
        db.session.rollback()


def _account() -> Account:
    tag = uuid.uuid4().hex[:12]
    account = Account(subject=tag, username=f"link{tag}")
    db.session.add(account)
    db.session.flush()
    return account


def _legacy_id() -> str:
    return f"u{uuid.uuid4().hex[:8]}"


def test_link_find_and_unlink(rt):
    account, value = _account(), _legacy_id()
    made = links.link(rt, account, "legacy", "H", value)
    db.session.commit()
    assert made.id and made.created_at and made.last_used_at is None
    assert links.find_account(rt, "legacy", "H", value).id == account.id
    assert links.find_link(rt, "legacy", "H", value).id == made.id
    assert [(item.kind, item.issuer, item.value) for item in links.links_of(rt, account)] \
        == [("legacy", "H", value)]
    assert links.unlink(rt, account, "legacy", "H", value) is True
    db.session.commit()
    assert links.find_account(rt, "legacy", "H", value) is None
    assert links.unlink(rt, account, "legacy", "H", value) is False
    assert links.links_of(rt, account) == []


def test_link_is_flushed_not_committed(rt):
    account, value = _account(), _legacy_id()
    db.session.commit()
    links.link(rt, account, "legacy", "H", value)
    assert links.find_account(rt, "legacy", "H", value).id == account.id
    db.session.rollback()
    assert links.find_account(rt, "legacy", "H", value) is None


def test_same_value_under_another_issuer_or_kind_is_another_link(rt):
    first, second, third = _account(), _account(), _account()
    value = _legacy_id()
    links.link(rt, first, "legacy", "H", value)
    links.link(rt, second, "legacy", "W", value)
    links.link(rt, third, "certificate", "Provincial CA", value)
    db.session.commit()
    assert links.find_account(rt, "legacy", "H", value).id == first.id
    assert links.find_account(rt, "legacy", "W", value).id == second.id
    assert links.find_account(rt, "certificate", "Provincial CA", value).id == third.id
    assert links.find_account(rt, "federation", UPSTREAM, value) is None


def test_a_value_belongs_to_one_account(rt):
    holder, other = _account(), _account()
    value = _legacy_id()
    made = links.link(rt, holder, "legacy", "H", value)
    db.session.commit()
    # Linking again to the same account changes nothing (a fold run twice).
    assert links.link(rt, holder, "legacy", "H", value).id == made.id
    with pytest.raises(LinkError) as info:
        links.link(rt, other, "legacy", "H", value)
    assert info.value.code == "taken"
    for clue in (holder.username, holder.subject, str(holder.id)):
        assert clue not in str(info.value)
    # Another account cannot remove it, and is not told who holds it.
    assert links.unlink(rt, other, "legacy", "H", value) is False
    assert links.find_account(rt, "legacy", "H", value).id == holder.id


def test_a_link_made_meanwhile_by_another_transaction_is_taken(rt, monkeypatch):
    holder, other = _account(), _account()
    value = _legacy_id()
    links.link(rt, holder, "federation", UPSTREAM, value)
    db.session.commit()
    # As if the check ran before the other transaction committed: the
    # unique index decides.
    monkeypatch.setattr(links, "find_link", lambda *args: None)
    with pytest.raises(LinkError) as info:
        links.link(rt, other, "federation", UPSTREAM, value)
    assert info.value.code == "taken"
    db.session.rollback()


def test_stored_value_is_encrypted_with_an_issuer_bound_index(rt):
    account, value = _account(), _legacy_id()
    links.link(rt, account, "legacy", "H", value)
    links.link(rt, account, "legacy", "W", value)
    db.session.commit()
    rows = db.session.execute(sa.text(
        "SELECT issuer, value_enc, value_index FROM identity_links WHERE account_id = :a "
        "ORDER BY issuer"), {"a": account.id}).all()
    assert [row.issuer for row in rows] == ["H", "W"]
    for row in rows:
        assert value not in row.value_enc and value not in row.value_index
        assert row.value_enc.startswith("v1.") and len(row.value_index) == 64
    # Equal values of two departments are not linkable through the index,
    # and a stored value does not decrypt under another issuer.
    assert rows[0].value_index != rows[1].value_index
    with pytest.raises(PiiError):
        rt.pii.decrypt("link:legacy:W", rows[0].value_enc)


def test_lookup_does_not_mark_use_and_touch_does(rt):
    account, value = _account(), _legacy_id()
    links.link(rt, account, "certificate", "Provincial CA", value)
    db.session.commit()
    assert links.find_account(rt, "certificate", "Provincial CA", value).id == account.id
    db.session.commit()
    assert links.links_of(rt, account)[0].last_used_at is None
    links.touch(links.find_link(rt, "certificate", "Provincial CA", value))
    db.session.commit()
    assert links.links_of(rt, account)[0].last_used_at is not None


def test_links_of_lists_by_kind_and_issuer(rt):
    account = _account()
    h1, h2, w1, sub = _legacy_id(), _legacy_id(), _legacy_id(), _legacy_id()
    for kind, issuer, value in (("legacy", "W", w1), ("legacy", "H", h1),
                                ("federation", UPSTREAM, sub), ("legacy", "H", h2)):
        links.link(rt, account, kind, issuer, value)
    db.session.commit()
    assert [(item.kind, item.issuer, item.value) for item in links.links_of(rt, account)] \
        == [("federation", UPSTREAM, sub), ("legacy", "H", h1), ("legacy", "H", h2),
            ("legacy", "W", w1)]
    assert [item.value for item in links.links_of(rt, account, "legacy", "H")] == [h1, h2]
    assert [item.value for item in links.links_of(rt, account, "federation")] == [sub]
    with pytest.raises(LinkError):
        links.links_of(rt, account, "wechat")


@pytest.mark.parametrize("kind,issuer,value,code", [
    ("wechat", "H", "u1001", "kind"),
    ("legacy", "", "u1001", "issuer"),
    ("legacy", "H Q", "u1001", "issuer"),
    ("legacy", "H\n", "u1001", "issuer"),
    ("legacy", "H" * 33, "u1001", "issuer"),
    ("certificate", " Provincial CA", "01ab", "issuer"),
    ("certificate", "CA\nX", "01ab", "issuer"),
    ("federation", "http://id.upstream.example", "sub", "issuer"),
    ("federation", "https://id.upstream.example/?tenant=1", "sub", "issuer"),
    ("federation", "https://id.upstream.example#x", "sub", "issuer"),
    ("federation", "https://user@id.upstream.example", "sub", "issuer"),
    ("federation", "id.upstream.example", "sub", "issuer"),
    ("legacy", "H", "", "value"),
    ("legacy", "H", "u1001 ", "value"),
    ("legacy", "H", "u10\x0001", "value"),
    ("legacy", "H", "u" * 256, "value"),
])
def test_malformed_links_are_refused(rt, kind, issuer, value, code):
    account = _account()
    for call in (lambda: links.link(rt, account, kind, issuer, value),
                 lambda: links.find_account(rt, kind, issuer, value),
                 lambda: links.unlink(rt, account, kind, issuer, value)):
        with pytest.raises(LinkError) as info:
            call()
        assert info.value.code == code and str(info.value)


def test_links_go_with_their_account(rt):
    account, value = _account(), _legacy_id()
    links.link(rt, account, "legacy", "H", value)
    db.session.commit()
    account_id = account.id
    db.session.execute(sa.delete(Account).where(Account.id == account_id))
    db.session.commit()
    assert db.session.execute(sa.text(
        "SELECT count(*) FROM identity_links WHERE account_id = :a"),
        {"a": account_id}).scalar() == 0
    assert links.find_account(rt, "legacy", "H", value) is None


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
