"""Single logout (issue 11): every way an SSO session ends tells the
relying parties of that session, by OpenID Connect Back-Channel Logout 1.0
from the provider's background worker, and a relying party that is slow
or down never holds up the user's logout. Logout tokens are checked with
PyJWT, an implementation nobody here wrote."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest
import requests
from sqlalchemy import select

from idp.audit.models import AuditEvent
from idp.extensions import db
from tests.conftest import free_port
from tests.helpers import Browser, redeem
from tests.logout_support import LogoutReceiver

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def receiver():
    receiver = LogoutReceiver()
    yield receiver
    receiver.stop()


def _signed_in(provider, receiver: LogoutReceiver, *, session_required: bool = True,
               subject_type: str = "public"):
    """A new account signed in through a client whose back-channel logout
    URI is ``receiver``: ``(browser, client, id_token_claims, raw_id_token, account)``."""
    username, password, _ = provider.create_account()
    client = provider.create_client(backchannel_logout_uri=receiver.url,
                                    backchannel_logout_session_required=session_required,
                                    subject_type=subject_type)
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password)["code"]
    raw = redeem(provider.url, client, code).json()["id_token"]
    claims = pyjwt.decode(raw, options={"verify_signature": False})
    return browser, client, claims, raw, username


def _verify(provider, token: str, client_id: str) -> tuple[dict, dict]:
    """The logout token's header and claims, its signature checked with
    the provider's JWKS by PyJWT."""
    jwks = pyjwt.PyJWKClient(f"{provider.url}/jwks.json")
    key = jwks.get_signing_key_from_jwt(token)
    claims = pyjwt.decode(token, key.key, algorithms=["ES256", "RS256"], audience=client_id,
                          issuer=provider.url, options={"require": ["iat", "exp", "jti"]})
    return pyjwt.get_unverified_header(token), claims


def _events(provider, event: str, client_id: str, *, wait: bool = True) -> list[AuditEvent]:
    """The audit events ``event`` of ``client_id``; with ``wait``, waiting
    (10 s at most) for one: the worker audits a delivery just after its
    POST, which the test may have seen first."""
    deadline = time.monotonic() + (10 if wait else 0)
    while True:
        with provider.app.app_context():
            found = list(db.session.scalars(select(AuditEvent).where(
                AuditEvent.event == event, AuditEvent.client_id == client_id)))
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def _logout(provider, browser: Browser, raw_id_token: str, client) -> requests.Response:
    return browser.session.get(f"{provider.url}/logout", params={
        "id_token_hint": raw_id_token,
        "post_logout_redirect_uri": client.post_logout_redirect_uri}, allow_redirects=False)


def test_rp_initiated_logout_sends_a_logout_token_as_the_spec_says(provider, receiver):
    browser, client, id_claims, raw, _ = _signed_in(provider, receiver)
    answer = _logout(provider, browser, raw, client)
    assert answer.status_code in (302, 303)
    [delivery] = receiver.wait(1)
    assert set(delivery) == {"logout_token"}
    header, claims = _verify(provider, delivery["logout_token"], client.client_id)
    assert header["typ"] == "logout+jwt" and header["alg"] == client.alg
    assert claims["sub"] == id_claims["sub"] and claims["sid"] == id_claims["sid"]
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims
    assert claims["exp"] > claims["iat"] >= int(time.time()) - 30
    [event] = _events(provider, "logout.delivered", client.client_id)
    assert event.detail["kind"] == "backchannel" and event.detail["reason"] == "logout"


def test_a_pairwise_client_gets_its_own_sub_and_sid(provider, receiver):
    browser, client, id_claims, raw, _ = _signed_in(provider, receiver,
                                                    subject_type="pairwise")
    _logout(provider, browser, raw, client)
    _, claims = _verify(provider, receiver.wait(1)[0]["logout_token"], client.client_id)
    assert (claims["sub"], claims["sid"]) == (id_claims["sub"], id_claims["sid"])


def test_each_relying_party_of_the_session_is_told_once(provider, receiver):
    other = LogoutReceiver()
    try:
        browser, first, _, raw, _ = _signed_in(provider, receiver)
        second = provider.create_client(backchannel_logout_uri=other.url)
        silent = provider.create_client()  # no logout URI: nothing to send
        for client in (second, silent, second):
            answer = browser.go(browser.authorize_url(client))
            assert answer.headers["Location"].startswith(client.redirect_uri)
        _logout(provider, browser, raw, first)
        receiver.wait(1)
        other.wait(1)
        time.sleep(0.5)
        assert len(receiver.received) == 1 and len(other.received) == 1
    finally:
        other.stop()


def test_a_dead_relying_party_does_not_hold_up_the_logout(make_provider):
    provider = make_provider(logout={"delivery_timeout": 1, "retry_delay": 1,
                                     "delivery_attempts": 2})
    dead = LogoutReceiver()
    dead.stop()  # nothing listens on its port any more
    username, password, _ = provider.create_account()
    client = provider.create_client(backchannel_logout_uri=dead.url)
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password)["code"]
    raw = redeem(provider.url, client, code).json()["id_token"]
    started = time.monotonic()
    answer = _logout(provider, browser, raw, client)
    assert answer.status_code in (302, 303) and time.monotonic() - started < 1.0
    deadline = time.monotonic() + 20
    while not _events(provider, "logout.delivery_failed", client.client_id, wait=False):
        assert time.monotonic() < deadline, "the failed delivery was never recorded"
        time.sleep(0.2)
    [failed] = _events(provider, "logout.delivery_failed", client.client_id)
    assert failed.outcome == "failure" and failed.detail["attempt"] == 2
    assert _events(provider, "logout.delivered", client.client_id, wait=False) == []


@pytest.mark.parametrize("status,posts", [(503, 2), (400, 1)])
def test_failures_are_retried_only_when_a_retry_may_help(make_provider, status, posts):
    provider = make_provider(logout={"retry_delay": 1, "delivery_attempts": 2})
    failing = LogoutReceiver(status=status)
    try:
        browser, client, _, raw, _ = _signed_in(provider, failing)
        _logout(provider, browser, raw, client)
        failing.wait(posts)
        deadline = time.monotonic() + 15
        while not _events(provider, "logout.delivery_failed", client.client_id, wait=False):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.5)
        assert len(failing.received) == posts
        [failed] = _events(provider, "logout.delivery_failed", client.client_id)
        assert failed.detail["answer"] == str(status)
    finally:
        failing.stop()


def test_a_redirect_is_not_followed(provider):
    target = LogoutReceiver()
    redirecting = LogoutReceiver(redirect_to=target.url)
    try:
        browser, client, _, raw, _ = _signed_in(provider, redirecting)
        _logout(provider, browser, raw, client)
        redirecting.wait(1)
        time.sleep(1)
        assert target.received == []
    finally:
        target.stop()
        redirecting.stop()


def test_an_idle_session_ends_and_tells_its_relying_parties(make_provider, receiver):
    provider = make_provider(session={"idle_ttl": 2})
    browser, client, id_claims, _, _ = _signed_in(provider, receiver)
    [delivery] = receiver.wait(1, timeout=20)
    _, claims = _verify(provider, delivery["logout_token"], client.client_id)
    assert claims["sid"] == id_claims["sid"]
    [event] = _events(provider, "logout.delivered", client.client_id)
    assert event.detail["reason"] == "idle_timeout"
    # The browser's session is gone too: a new authorization asks for a login.
    answer = browser.go(browser.authorize_url(client))
    assert answer.status_code == 200 and "password" in answer.text


def test_a_session_at_its_absolute_end_tells_its_relying_parties(make_provider, receiver):
    provider = make_provider(session={"sso_ttl": 2})
    _, client, _, _, _ = _signed_in(provider, receiver)
    receiver.wait(1, timeout=20)
    [event] = _events(provider, "logout.delivered", client.client_id)
    assert event.detail["reason"] == "expired"


def test_a_used_session_does_not_end_while_used(make_provider, receiver):
    provider = make_provider(session={"idle_ttl": 3})
    browser, client, _, _, _ = _signed_in(provider, receiver)
    for _ in range(5):
        time.sleep(1)
        answer = browser.go(browser.authorize_url(client))
        assert answer.headers["Location"].startswith(client.redirect_uri)
    assert receiver.received == []


def test_a_new_login_in_the_same_browser_ends_the_old_session(provider, receiver):
    browser, client, id_claims, _, _ = _signed_in(provider, receiver)
    username, password, _ = provider.create_account()
    browser.login_for_code(provider.create_client(), username, password, prompt="login")
    _, claims = _verify(provider, receiver.wait(1)[0]["logout_token"], client.client_id)
    assert claims["sid"] == id_claims["sid"]


def _account_and_runtime(provider, username):
    from idp.accounts.service import find_by_username

    return find_by_username(username), provider.runtime


@pytest.mark.parametrize("trigger", ["suspend", "reverify", "password_reset", "operator"])
def test_every_way_an_account_is_stopped_tells_its_relying_parties(provider, receiver,
                                                                   trigger):
    from idp import unit_of_work
    from idp.admin import service as admin
    from idp.sessions import end_all

    _, client, id_claims, _, username = _signed_in(provider, receiver)
    with provider.app.app_context():
        account, rt = _account_and_runtime(provider, username)
        if trigger == "suspend":
            admin.suspend(rt, account, "test", "a test")
        elif trigger == "reverify":
            admin.require_reverification(rt, account, "test", "a test")
        elif trigger == "password_reset":
            end_all(rt, account, "password_reset", revoke_grants=True)
        else:
            ended = admin.logout_everywhere(rt, account, "test", revoke_grants=False)
            assert ended.ended == 1
        unit_of_work.commit()
    _, claims = _verify(provider, receiver.wait(1)[0]["logout_token"], client.client_id)
    assert claims["sid"] == id_claims["sid"]


def test_the_cli_ends_a_users_sessions(provider, receiver):
    from click.testing import CliRunner

    from idp.cli import main

    env = provider.cli_env()
    _, client, _, _, username = _signed_in(provider, receiver)
    result = CliRunner().invoke(main, ["users", "logout", username, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"sessions_ended": 1' in result.output
    receiver.wait(1)


def test_a_closed_port_is_refused_at_registration_only_by_scheme(provider):
    # Registration does not probe the URI: a relying party may be down then.
    client = provider.create_client(
        backchannel_logout_uri=f"http://127.0.0.1:{free_port()}/logout")
    assert client.client_id
