"""Case O-9 with a store failure: a replay of the code arrives while its
first redemption runs and, finding no grant row yet, only marks the grant
id revoked. The first redemption reads the marks after its commit
(``_check_after_commit``); when that read fails, it revokes its grant
(fails closed) instead of leaving a live refresh token behind (found by
the attack on issue 9's changes)."""

from __future__ import annotations

import threading

import requests

from tests.helpers import Browser, callback_params, redeem


def test_a_replay_during_redemption_revokes_the_grant_even_if_the_store_blips(
        provider, monkeypatch):
    from idp.authorizations.models import Grant
    from idp.authorizations.service import REVOKED_GRANT
    from idp.extensions import db
    from idp.oidc.flows import authorization_code as flow
    from idp.store import StoreError

    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password, scope="openid offline_access")
    code = callback_params(browser.go(browser.authorize_url(
        client, scope="openid offline_access")))["code"]

    reached, release = threading.Event(), threading.Event()
    original = flow.create_grant

    def held(*args, **kwargs):
        reached.set()
        assert release.wait(20)
        return original(*args, **kwargs)

    monkeypatch.setattr(flow, "create_grant", held)
    store = provider.runtime.store
    real_get = type(store).get

    def blipping_get(self, key):
        if key.startswith(REVOKED_GRANT) and threading.current_thread() is not \
                threading.main_thread():
            raise StoreError("blip")
        return real_get(self, key)

    answers = []
    first = threading.Thread(target=lambda: answers.append(redeem(provider.url, client, code)))
    first.start()
    try:
        assert reached.wait(20)
        replay = redeem(provider.url, client, code)  # the replay, while the first is held
        assert replay.json()["error"] == "invalid_grant"
        monkeypatch.setattr(type(store), "get", blipping_get)
    finally:
        release.set()
        first.join(30)
    monkeypatch.setattr(type(store), "get", real_get)
    monkeypatch.setattr(flow, "create_grant", original)

    tokens = answers[0].json()
    with provider.app.app_context():
        grant_id = db.session.query(Grant.id).filter(
            Grant.client_id == client.client_id).scalar()
        revoked_at = db.session.get(Grant, grant_id).revoked_at
    refreshed = requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert revoked_at is not None and refreshed.status_code == 400, \
        f"replayed code's grant is live in the database (refresh: {refreshed.status_code})"
