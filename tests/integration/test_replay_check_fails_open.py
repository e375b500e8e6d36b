"""Case O-9 with a store failure: a replay of the code arrives while its
first redemption runs and, finding no grant row yet, only marks the grant
id revoked. The first redemption reads the marks after its commit
(``_check_after_commit``); when that read fails, it revokes its grant
(fails closed) instead of leaving a live refresh token behind (found by
the attack on issue 9's changes)."""

from __future__ import annotations

import threading

import requests

from tests.helpers import hold, offline_sso, redeem, sso_code


def test_a_replay_during_redemption_revokes_the_grant_even_if_the_store_blips(
        provider, monkeypatch):
    from idp.authorizations.models import Grant
    from idp.authorizations.service import REVOKED_GRANT
    from idp.extensions import db
    from idp.oidc.flows import authorization_code as flow
    from idp.store import StoreError

    _username, client, browser = offline_sso(provider)
    code = sso_code(browser, client)
    reached, release = hold(monkeypatch, flow, "create_grant")
    store = provider.runtime.store
    real_get_many = store.get_many

    def blipping_get_many(keys):
        # The check after the commit reads the grant's mark with the others.
        if any(key.startswith(REVOKED_GRANT) for key in keys):
            raise StoreError("blip")
        return real_get_many(keys)

    answers = []
    first = threading.Thread(target=lambda: answers.append(redeem(provider.url, client, code)))
    first.start()
    try:
        assert reached.wait(20)
        replay = redeem(provider.url, client, code)  # the replay, while the first is held
        assert replay.json()["error"] == "invalid_grant"
        # From here on, past its own checks, the first redemption reads only
        # after its commit.
        monkeypatch.setattr(store, "get_many", blipping_get_many)
    finally:
        release.set()
        first.join(30)
    monkeypatch.undo()

    assert answers[0].status_code == 200, answers[0].text
    tokens = answers[0].json()
    with provider.app.app_context():
        grant_id = db.session.query(Grant.id).filter(
            Grant.client_id == client.client_id).scalar()
        revoked_at = db.session.get(Grant, grant_id).revoked_at
    refreshed = requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert revoked_at is not None and refreshed.status_code == 400, \
        f"replayed code's grant is live in the database (refresh: {refreshed.status_code})"
