"""A request holding a copy of an SSO session (an SSO hop adding its
client, a public computer's idle clock) never writes it back after a
logout deleted it: updates go through ``Store.replace``, which stores only
over a live entry (``idp.sessions.save_session``). Otherwise the logged-out
cookie worked again for whoever held a copy of it (the thief the user signs
out to get rid of; the next user of a kiosk). Found by the attack on issue
9's changes; the write-back predates them."""

from __future__ import annotations

import threading

from tests.helpers import Browser, callback_params, hold


def test_a_logout_during_an_sso_hop_stays_a_logout(provider, monkeypatch):
    from idp import sessions
    from idp.oidc.flows import authorization_code as flow

    username, password, _ = provider.create_account()
    first, second = provider.create_client(), provider.create_client()
    browser = Browser(provider.url)
    browser.login_for_code(first, username, password, scope="openid")
    cookie_name = provider.runtime.settings["session"]["cookie_name"]
    handle = browser.session.cookies.get(cookie_name)

    reached, release = hold(monkeypatch, flow, "add_relying_party")
    hop = threading.Thread(target=lambda: browser.go(browser.authorize_url(second,
                                                                           scope="openid")))
    hop.start()
    try:
        assert reached.wait(20)
        with provider.app.app_context():  # the user signs out meanwhile
            sso = sessions.load_session(provider.runtime.store, handle)
            sessions.end(provider.runtime, sso, "logout", revoke_grants=False)
            assert sessions.load_session(provider.runtime.store, handle) is None
    finally:
        release.set()
        hop.join(30)
    monkeypatch.undo()

    # A copy of the old cookie, after the logout.
    with provider.app.app_context():
        assert sessions.load_session(provider.runtime.store, handle) is None, \
            "the logged-out session was written back to the store"
    answer = browser.go(browser.authorize_url(first, scope="openid", prompt="none"))
    assert "code" not in callback_params(answer), "the logged-out cookie gives codes again"
