"""The token endpoints' caches (``idp.accounts.snapshots``,
``idp.authorizations.cache``) against every kind of revocation and change,
seen from a second worker.

Two applications share one database and one store, as two worker
processes of ``idp serve`` do; each has its own caches. Every test first
warms both workers' caches with a userinfo call that succeeds, then
changes or revokes through the first worker (or an operator command), and
checks the second worker's userinfo and introspection at once: no cached
grant or account may outlive a revocation, and a changed account is
answered as it is now.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import pytest
import requests

from idp import create_app
from tests.helpers import Browser, each_app_context_is_a_unit, hidden_inputs, pkce_pair, redeem


def _plain(tree: Mapping) -> dict:
    return {key: _plain(value) if isinstance(value, Mapping) else value
            for key, value in tree.items()}


@dataclass
class Worker:
    """A second application on the provider's database and store."""

    app: object
    issuer: str

    def get(self, path: str, token: str):
        return self.app.test_client(use_cookies=False).get(
            path, headers={"Authorization": f"Bearer {token}"}, base_url=self.issuer)

    def userinfo(self, tokens: dict):
        return self.get("/userinfo", tokens["access_token"])

    def introspect(self, client, token: str) -> dict:
        answer = self.app.test_client(use_cookies=False).post(
            "/introspect", data={"token": token}, auth=client.auth, base_url=self.issuer)
        assert answer.status_code == 200, answer.data
        return answer.get_json()


@pytest.fixture(scope="module")
def second(provider) -> Iterator[Worker]:
    settings = _plain(provider.runtime.settings)
    app = each_app_context_is_a_unit(create_app(settings))
    yield Worker(app, settings["issuer"])
    from idp.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _login(provider, client, username, password, scope="openid email offline_access"):
    browser = Browser(provider.url)
    verifier, challenge = pkce_pair()
    code = browser.login_for_code(client, username, password, scope=scope,
                                  code_challenge=challenge,
                                  code_challenge_method="S256")["code"]
    return browser, redeem(provider.url, client, code, verifier).json()


def _userinfo(provider, tokens):
    return requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})


def _warm(provider, second, *, trusted: bool = True):
    username, password, _ = provider.create_account(email="before@example.test")
    client = provider.create_client(trusted=trusted)
    browser, tokens = _login(provider, client, username, password)
    assert _userinfo(provider, tokens).status_code == 200
    assert second.userinfo(tokens).status_code == 200
    assert second.introspect(client, tokens["access_token"])["active"] is True
    return username, password, client, browser, tokens


@pytest.fixture
def warm(provider, second):
    """An account with tokens whose userinfo both workers answered (cached)."""
    return _warm(provider, second)


def _dead_everywhere(provider, second, client, tokens, *, introspect: bool = True) -> None:
    assert _userinfo(provider, tokens).status_code == 401
    assert second.userinfo(tokens).status_code == 401
    if introspect:
        assert second.introspect(client, tokens["access_token"]) == {"active": False}


def test_ending_every_session_stops_the_cached_token_in_the_other_worker(
        provider, second, warm):
    """As a password reset ends them (docs/protocol.md, "Ending SSO sessions")."""
    from idp import sessions
    from idp.accounts.service import find_for_login

    username, _password, client, _browser, tokens = warm
    with provider.app.app_context():
        account = find_for_login(provider.runtime, username)
        sessions.end_all(provider.runtime, account, "password_reset", revoke_grants=True)
    _dead_everywhere(provider, second, client, tokens)


def test_relying_party_logout_keeps_the_grant_in_both_workers(provider, second, warm):
    """RP-initiated logout ends the SSO session, not the grants (until
    back-channel logout); both workers answer alike."""
    _username, _password, client, browser, tokens = warm
    page = browser.session.get(f"{provider.url}/logout", params={
        "id_token_hint": tokens["id_token"], "client_id": client.client_id})
    browser.session.post(f"{provider.url}/logout", data=hidden_inputs(page.text))
    assert browser.session.get(f"{provider.url}/account", allow_redirects=False).status_code \
        in (302, 303)
    assert _userinfo(provider, tokens).status_code == 200
    assert second.userinfo(tokens).status_code == 200


def test_suspension_stops_the_cached_token_in_the_other_worker(provider, second, warm):
    from idp.accounts.service import find_for_login
    from idp.admin.service import suspend

    username, _password, client, _browser, tokens = warm
    with provider.app.app_context():
        suspend(provider.runtime, find_for_login(provider.runtime, username), "clerk-7", "fraud")
    _dead_everywhere(provider, second, client, tokens)


def test_refresh_reuse_stops_the_cached_token_in_the_other_worker(provider, second, warm):
    _username, _password, client, _browser, tokens = warm
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert requests.post(f"{provider.url}/token", auth=client.auth, data=data).status_code == 200
    reused = requests.post(f"{provider.url}/token", auth=client.auth, data=data)
    assert reused.json()["error"] == "invalid_grant"
    _dead_everywhere(provider, second, client, tokens)


def test_consent_withdrawal_stops_the_cached_token_in_the_other_worker(provider, second):
    from tests.integration.test_consents import _withdraw

    _username, _password, client, browser, tokens = _warm(provider, second, trusted=False)
    assert _withdraw(browser, client.client_id).status_code == 303
    _dead_everywhere(provider, second, client, tokens)


def test_a_client_made_public_stops_every_cached_grant_at_once(provider, second, warm,
                                                               monkeypatch):
    """The bulk revocation writes one marker for all of the client's grants,
    not one per grant; a grant made after it is not caught by it."""
    from idp.admin.clients import change_client
    from idp.clients.service import find_client, registered_metadata

    username, password, client, _browser, tokens = warm
    with provider.app.app_context():
        metadata = registered_metadata(find_client(client.client_id))
        change_client(provider.runtime, client.client_id,
                      replace(metadata, token_endpoint_auth_method="none"), "clerk-7")
    _dead_everywhere(provider, second, client, tokens, introspect=False)
    from idp.authorizations import service

    monkeypatch.setattr(service, "SERVER_CLOCK_SKEW", 0)  # one clock here
    public = replace(client, client_secret=None)
    _, fresh = _login(provider, public, username, password, scope="openid email")
    assert second.userinfo(fresh).status_code == 200


def test_a_removed_client_stops_its_cached_tokens(provider, second, warm):
    from idp.admin.clients import remove_client

    _username, _password, client, _browser, tokens = warm
    with provider.app.app_context():
        remove_client(provider.runtime, client.client_id, "clerk-7")
    assert _userinfo(provider, tokens).status_code == 401
    assert second.userinfo(tokens).status_code == 401


def test_a_changed_account_is_answered_as_it_is_now(provider, second, warm):
    from idp.accounts.service import find_for_login
    from idp.extensions import db

    username, _password, _client, _browser, tokens = warm
    assert second.userinfo(tokens).get_json()["email"] == "before@example.test"
    with provider.app.app_context():
        find_for_login(provider.runtime, username).email = "after@example.test"
        db.session.commit()
    assert second.userinfo(tokens).get_json()["email"] == "after@example.test"
    assert _userinfo(provider, tokens).json()["email"] == "after@example.test"


def test_a_change_rolled_back_publishes_nothing(provider, second, warm):
    from idp.accounts.service import find_for_login
    from idp.accounts.snapshots import AccountCache
    from idp.extensions import db

    username, _password, _client, _browser, tokens = warm
    with provider.app.app_context():
        account = find_for_login(provider.runtime, username)
        key = AccountCache.version_key(account.id)
        before = provider.runtime.store.get(key)
        account.email = "never@example.test"
        db.session.flush()
        db.session.rollback()
        assert provider.runtime.store.get(key) == before
    assert second.userinfo(tokens).get_json()["email"] == "before@example.test"


def test_new_and_revoked_evidence_move_the_accounts_version(provider):
    """Evidence is part of the snapshot: a row added through the session and
    the bulk UPDATE of :func:`revoke_evidence` both publish a new version."""
    from idp.accounts.models import VerificationEvidence
    from idp.accounts.service import find_for_login
    from idp.accounts.snapshots import AccountCache
    from idp.accounts.verification import revoke_evidence
    from idp.extensions import db

    username, _password, _ = provider.create_account()
    store = provider.runtime.store
    with provider.app.app_context():
        account = find_for_login(provider.runtime, username)
        key = AccountCache.version_key(account.id)
        first = store.get(key)
        db.session.add(VerificationEvidence(
            account_id=account.id, method="population_registry", source="population",
            result="match", level=2, reference="ref-1"))
        db.session.commit()
        added = store.get(key)
        assert added is not None and added != first
        assert revoke_evidence(account, "test") == 1
        db.session.commit()
        revoked = store.get(key)
        assert revoked is not None and revoked != added


def test_a_snapshot_is_read_again_after_its_local_lifetime(provider, monkeypatch):
    """When a version could not be written (the store failed just after the
    commit), a process sees the change once its snapshot's lifetime ends."""
    from idp.accounts import snapshots
    from idp.accounts.service import find_for_login
    from idp.extensions import db

    username, _password, _ = provider.create_account(name="Before")
    cache = snapshots.AccountCache(provider.runtime.store)
    with provider.app.app_context():
        account_id = find_for_login(provider.runtime, username).id
        db.session.rollback()  # read in a transaction of its own, so it is kept
        assert cache.get(account_id).name == "Before"
        db.session.execute(db.update(snapshots.Account).where(
            snapshots.Account.id == account_id).values(name="After"))
        db.session.commit()
        assert cache.get(account_id).name == "Before"  # nothing told this cache
        monkeypatch.setattr(snapshots, "LOCAL_TTL", 0.0)
        assert cache.get(account_id).name == "After"


def test_a_snapshot_read_by_an_uncommitted_change_is_not_kept(provider):
    """A transaction that changed an account and reads its snapshot sees
    its own change, but the snapshot is not cached: a rollback must not
    leave it behind under the old version."""
    from idp.accounts.service import find_for_login
    from idp.extensions import db

    username, _password, _ = provider.create_account(name="Kept")
    cache = provider.runtime.accounts
    with provider.app.app_context():
        account = find_for_login(provider.runtime, username)
        account.name = "Rolled back"
        assert cache.get(account.id).name == "Rolled back"
        db.session.rollback()
        assert cache.get(account.id).name == "Kept"


def test_a_snapshot_read_in_a_transaction_holding_an_older_snapshot_is_not_kept(provider):
    """SQLite reads one snapshot per transaction once it has written: a
    snapshot loaded then may be older than the version read, so it is used
    once and not kept. PostgreSQL (READ COMMITTED) reads anew at every
    statement, and so does SQLite before a write (the driver begins its
    transactions at the first write): such a load is kept. (Not keeping it
    made every refresh reload the account: the grant reads its token first;
    found by the benchmark of issue 9.)"""
    from sqlalchemy import select, update

    from idp.accounts import snapshots
    from idp.accounts.models import Account
    from idp.accounts.service import find_for_login
    from idp.authorizations.models import Grant
    from idp.extensions import db

    username, _password, _ = provider.create_account(name="Early")
    cache = snapshots.AccountCache(provider.runtime.store)
    with provider.app.app_context():
        account_id = find_for_login(provider.runtime, username).id  # a read: a statement
        assert cache.get(account_id).name == "Early"
        assert account_id in cache._entries
        cache.forget({account_id})
        db.session.execute(update(Grant).where(Grant.id == "none").values(scope="x"))
        assert cache.get(account_id).name == "Early"
        sqlite = db.engine.dialect.name == "sqlite"
        assert (account_id in cache._entries) is not sqlite
        db.session.rollback()
        cache.forget({account_id})
        db.session.execute(select(Account.id))
        assert cache.get(account_id).name == "Early"
        assert account_id in cache._entries
