"""Changing the password in the account console (issue 7, account basics):
within a re-authentication, with the current password typed again; every
other session of the account ends (and the grants issued in them), this
browser stays signed in, the verified phone is told."""

from __future__ import annotations

import time

import jwt as pyjwt
import requests

from connectors.sandbox import read_outbox
from tests.helpers import Browser, hidden_inputs, redeem
from tests.integration.test_step_up import level_2_account
from tests.logout_support import LogoutReceiver
from tests.reauth_support import reauth_with_sms
from tests.sandbox_support import KEY, SECRET

NEW_PASSWORD = "a brand new passphrase"


def _change(session: requests.Session, base: str, current: str, new: str,
            confirm: str | None = None) -> requests.Response:
    page = session.get(f"{base}/account/password")
    assert page.status_code == 200, page.url
    fields = hidden_inputs(page.text)
    fields.update(current=current, password=new, confirm=new if confirm is None else confirm)
    return session.post(f"{base}/account/password", data=fields, allow_redirects=False)


def _refresh(provider, client, token: str) -> requests.Response:
    return requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "refresh_token", "refresh_token": token})


def _login_status(provider, username: str, password: str) -> int:
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username=username, password=password)
    return session.post(f"{provider.url}/login", data=fields,
                        allow_redirects=False).status_code


def test_change_password_ends_other_sessions_and_tells_the_phone(gw):
    from idp.accounts.service import find_by_username
    from idp.audit.models import AuditEvent
    from idp.extensions import db

    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    client = provider.create_client()
    # Another browser with a relying party's refresh token...
    other = Browser(provider.url)
    code = other.login_for_code(client, username, password,
                                scope="openid offline_access")["code"]
    other_tokens = redeem(provider.url, client, code).json()
    # ...and this browser, with one of its own.
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password,
                                  scope="openid offline_access")["code"]
    own_tokens = redeem(provider.url, client, code).json()
    base = provider.url
    before = browser.session.get(f"{base}/account/password", allow_redirects=False)
    assert before.status_code == 302
    assert before.headers["Location"] == "/account/reauth?next=/account/password"
    done = reauth_with_sms(browser.session, base, gateway, person.phone, password,
                           next_path="/account/password")
    assert done.status_code == 303 and done.headers["Location"] == "/account/password"

    wrong = _change(browser.session, base, "not my password", NEW_PASSWORD)
    assert wrong.status_code == 401 and "The password is incorrect." in wrong.text
    # The form comes back without any password in it.
    assert "not my password" not in wrong.text and NEW_PASSWORD not in wrong.text
    weak = _change(browser.session, base, password, "short")
    assert weak.status_code == 400 and "at least 8 characters" in weak.text
    mismatch = _change(browser.session, base, password, NEW_PASSWORD, "something else")
    assert mismatch.status_code == 400 and "The passwords do not match." in mismatch.text
    same = _change(browser.session, base, password, password)
    assert same.status_code == 400 and "must differ from the current one" in same.text
    old_cookie = browser.session.cookies.get("idp_sso")
    changed = _change(browser.session, base, password, NEW_PASSWORD)
    assert changed.status_code == 303 and changed.headers["Location"] == "/account"
    assert "idp_sso=" in changed.headers["Set-Cookie"]
    assert browser.session.cookies.get("idp_sso") != old_cookie

    # This browser goes on (same login), the other one is signed out.
    page = browser.session.get(f"{base}/account", allow_redirects=False)
    assert page.status_code == 200 and "Your password is changed" in page.text
    assert other.session.get(f"{base}/account", allow_redirects=False).status_code == 302
    stale = requests.Session()
    stale.cookies.set("idp_sso", old_cookie)
    assert stale.get(f"{base}/account", allow_redirects=False).status_code == 302
    # Grants of other sessions are revoked; this session's stays.
    assert _refresh(provider, client, other_tokens["refresh_token"]).json()["error"] == \
        "invalid_grant"
    assert _refresh(provider, client, own_tokens["refresh_token"]).status_code == 200
    assert _login_status(provider, username, password) == 401
    assert _login_status(provider, username, NEW_PASSWORD) == 303
    assert read_outbox(gateway.data_path, person.phone)[-1]["template"] == "password_changed"
    with provider.app.app_context():
        account_id = find_by_username(username).id
        events = [(e.event, e.outcome, e.detail.get("reason")) for e in db.session.query(
            AuditEvent).filter_by(account_id=account_id)
            .order_by(AuditEvent.created_at, AuditEvent.id)
            if e.event.startswith("password.")]
    assert events == [("password.change_failed", "failure", "invalid_credentials"),
                      ("password.changed", "success", None)]


def test_change_password_needs_a_live_reauthentication(make_provider, gw):
    """A form posted after the re-authentication has expired changes nothing."""
    import time

    _provider, gateway = gw
    provider = make_provider(session={"reauth_ttl": 1}, gateway={
        "url": gateway.url, "access_key": KEY, "secret": SECRET, "retries": 0})
    username, password, person = level_2_account(provider, gateway)
    browser = Browser(provider.url)
    browser.go(f"{provider.url}/account", username=username, password=password)
    assert reauth_with_sms(browser.session, provider.url, gateway, person.phone, password,
                           next_path="/account/password").status_code == 303
    page = browser.session.get(f"{provider.url}/account/password")
    time.sleep(1.1)
    fields = hidden_inputs(page.text)
    fields.update(current=password, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    late = browser.session.post(f"{provider.url}/account/password", data=fields,
                                allow_redirects=False)
    assert late.status_code == 303
    assert late.headers["Location"] == "/account/reauth?next=/account/password"
    assert _login_status(provider, username, password) == 303


def test_new_password_is_checked_against_the_accounts_own_identifiers(gw):
    """Issue 7 finding 5 in the console: the password policy knows the
    account (its username here), and the rule is on the page before typing."""
    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    browser = Browser(provider.url)
    browser.go(f"{provider.url}/login", username=username, password=password)
    reauth_with_sms(browser.session, provider.url, gateway, person.phone, password,
                    next_path="/account/password")
    page = browser.session.get(f"{provider.url}/account/password")
    assert "Not a common password" in page.text and 'minlength="8"' in page.text
    built = _change(browser.session, provider.url, password, f"{username}2026")
    assert built.status_code == 400
    assert "username" in built.text
    common = _change(browser.session, provider.url, password, "password123")
    assert common.status_code == 400


def test_a_password_change_tells_the_portals_of_the_other_sessions_only(gw):
    """Single logout (issue 11): the sessions a password change ends tell
    their relying parties; the session that changed it goes on, untold."""
    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    receiver = LogoutReceiver()
    try:
        client = provider.create_client(backchannel_logout_uri=receiver.url)
        other = Browser(provider.url)
        code = other.login_for_code(client, username, password)["code"]
        other_sid = pyjwt.decode(redeem(provider.url, client, code).json()["id_token"],
                                 options={"verify_signature": False})["sid"]
        browser = Browser(provider.url)
        browser.login_for_code(client, username, password)
        reauth_with_sms(browser.session, provider.url, gateway, person.phone, password,
                        next_path="/account/password")
        changed = _change(browser.session, provider.url, password, NEW_PASSWORD)
        assert changed.status_code == 303
        [delivery] = receiver.wait(1)
        claims = pyjwt.decode(delivery["logout_token"], options={"verify_signature": False})
        assert claims["sid"] == other_sid
        time.sleep(1)
        assert len(receiver.received) == 1
    finally:
        receiver.stop()
