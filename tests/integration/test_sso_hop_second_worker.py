"""The SSO hop reads the account from its cached snapshot; a second worker
(a second application on the same database and store, its own caches,
served on its own port) sees every account change made through the first
at its next hop (checks of the attack on issue 9's changes, which held)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import pytest
from werkzeug.serving import make_server

from idp import create_app
from tests.conftest import free_port
from tests.helpers import Browser, callback_params, close_app, each_app_context_is_a_unit


def _plain(tree: Mapping) -> dict:
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


@pytest.fixture(scope="module")
def second_url(provider):
    settings = _plain(provider.runtime.settings)
    app = each_app_context_is_a_unit(create_app(settings))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    # Its engine's pooled connections, left open, were collected in a
    # later test as a ResourceWarning on PostgreSQL.
    close_app(app)


def _hop(browser, base, client):
    """An SSO hop at ``base`` with the browser's cookie; the code or None."""
    url = browser.authorize_url(client, scope="openid").replace(browser.base, base)
    answer = browser.session.get(url, allow_redirects=False)
    location = answer.headers.get("Location", "")
    if answer.status_code in (302, 303) and location.startswith(client.redirect_uri):
        return callback_params(answer).get("code")
    return None


@pytest.fixture
def warm(provider, second_url):
    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password, scope="openid")
    assert _hop(browser, second_url, client)  # the second worker's snapshot is warm
    return username, client, browser


def _act(provider, username, action):
    from idp.accounts.service import find_for_login

    with provider.app.app_context():
        action(provider.runtime, find_for_login(provider.runtime, username))


def test_suspension(provider, second_url, warm):
    from idp.admin.service import suspend

    username, client, browser = warm
    _act(provider, username, lambda rt, a: suspend(rt, a, "clerk", "fraud"))
    assert _hop(browser, second_url, client) is None


def test_end_all(provider, second_url, warm):
    from idp import sessions

    username, client, browser = warm
    _act(provider, username,
         lambda rt, a: sessions.end_all(rt, a, "phone_changed", revoke_grants=False))
    assert _hop(browser, second_url, client) is None


def test_reverification_required(provider, second_url, warm):
    from idp.admin.service import require_reverification

    username, client, browser = warm
    _act(provider, username, lambda rt, a: require_reverification(rt, a, "clerk", "x"))
    assert _hop(browser, second_url, client) is None


def test_operator_cli_style_bulk_change_is_seen_within_ttl_only(provider, second_url, warm):
    """A change made outside the ORM (a DBA's UPDATE, a restore) is not
    published: documented (LOCAL_TTL). Here an ORM change must be seen."""
    from idp.extensions import db

    username, client, browser = warm

    def suspend_by_orm(rt, account):
        account.status = "suspended"
        db.session.commit()

    _act(provider, username, suspend_by_orm)
    assert _hop(browser, second_url, client) is None
