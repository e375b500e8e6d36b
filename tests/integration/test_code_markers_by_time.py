"""A code is stopped by a revocation marker when the authorization it
stands for was decided before the marker's time (found by the attack on
issue 9's changes). The code's time is taken before the hop reads the
account, its session or its consent (a withdrawal between the consent
check and the code would otherwise be later than the marker), and a
marker covers times up to ``SERVER_CLOCK_SKEW`` after its own (the hop may
run on a server whose clock is ahead of the revoker's).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import requests

from tests.helpers import callback_params, hold, offline_sso, redeem, sso_code


def _withdraw(provider, username, client):
    from idp.accounts.service import find_for_login
    from idp.authorizations.consents import withdraw_consent

    with provider.app.app_context():
        account = find_for_login(provider.runtime, username)
        assert withdraw_consent(provider.runtime, account.id, client.client_id) is not None


def _assert_stopped(provider, client, code):
    answer = redeem(provider.url, client, code)
    if answer.status_code == 200:
        tokens = answer.json()
        refreshed = requests.post(f"{provider.url}/token", auth=client.auth, data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        raise AssertionError(f"a code given under a withdrawn consent was redeemed; "
                             f"refresh answered {refreshed.status_code}")
    assert answer.json()["error"] == "invalid_grant"


def test_consent_withdrawn_during_the_sso_hop(provider, monkeypatch):
    from idp.oidc.flows import authorization_code

    username, client, browser = offline_sso(provider, trusted=False)
    # Held after has_consent, before the code is stored.
    reached, release = hold(monkeypatch, authorization_code, "issue_rate")
    answers = []
    hop = threading.Thread(target=lambda: answers.append(
        browser.go(browser.authorize_url(client, scope="openid offline_access"))))
    hop.start()
    try:
        assert reached.wait(20)
        _withdraw(provider, username, client)
    finally:
        release.set()
        hop.join(30)
    monkeypatch.undo()
    code = callback_params(answers[0])["code"]
    _assert_stopped(provider, client, code)


def test_consent_withdrawn_on_a_machine_whose_clock_is_behind(provider, monkeypatch):
    """The hop runs on a machine 2 s ahead of the one that withdraws."""
    from idp.oidc import blueprint

    username, client, browser = offline_sso(provider, trusted=False)
    real = blueprint.utcnow
    # Where the hop takes the authorization's time.
    monkeypatch.setattr(blueprint, "utcnow", lambda: real() + timedelta(seconds=2))
    code = sso_code(browser, client)
    monkeypatch.setattr(blueprint, "utcnow", real)
    _withdraw(provider, username, client)
    _assert_stopped(provider, client, code)
