"""Fixtures of the service-level tests: an application without an HTTP
server, and its runtime inside an application context; accounts and
clients are made as for the live provider's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ProviderHandle, close_app, each_app_context_is_a_unit


@pytest.fixture(scope="module")
def idp(tmp_path_factory, database_url) -> Iterator[ProviderHandle]:
    """An application on the run's database, served by no one: a handle
    whose ``url`` is only its issuer."""
    from idp import create_app
    from tests.conftest import make_settings

    # No single-logout thread: the tests work the queues themselves.
    app = each_app_context_is_a_unit(
        create_app(make_settings(tmp_path_factory.mktemp("idp-services"), database_url, 9,
                                 logout={"worker": False})))
    yield ProviderHandle(app=app, server=None, url=app.extensions["idp"].issuer)
    close_app(app)


@pytest.fixture
def rt(idp):
    """The application's runtime, inside an application context."""
    from idp.extensions import db

    with idp.app.app_context():
        yield idp.runtime
        db.session.remove()


@pytest.fixture
def account(idp, rt):
    """A new account, loaded in the test's application context."""
    from idp.accounts.service import find_by_username

    username, _password, _sub = idp.create_account()
    return find_by_username(username)


@pytest.fixture
def client(idp):
    """A new confidential client (tests.helpers.TestClient)."""
    return idp.create_client()


@pytest.fixture
def commits(monkeypatch, rt) -> list[int]:
    """One entry per ``db.session.commit()`` in the test's application context."""
    from idp.extensions import db

    calls: list[int] = []
    commit = db.session.commit
    monkeypatch.setattr(db.session, "commit", lambda: (calls.append(1), commit())[1])
    return calls
