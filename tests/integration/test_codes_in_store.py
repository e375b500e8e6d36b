"""An authorization code holds its grant in the store until it is redeemed
(``idp.oidc.flows.authorization_code``): the single sign-on hop writes
nothing to the database, and every revocation between the hop and the
redemption still stops the code."""

from __future__ import annotations

import threading

import pytest
import requests
from sqlalchemy import event, select

from tests.helpers import Browser, offline_sso, redeem, sso_code


@pytest.fixture
def signed_in(provider):
    """A browser signed in to the provider, a client it authorized once."""
    return offline_sso(provider)


def test_the_sso_hop_writes_nothing_to_the_database(provider, signed_in):
    from idp.extensions import db

    _username, client, browser = signed_in
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        # The audit writer's thread writes the deferred events in its own
        # transaction, after the answer.
        if threading.current_thread().name != "audit-writer":
            statements.append(statement.split(None, 1)[0].upper())

    with provider.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        code = sso_code(browser, client)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert code
    assert [s for s in statements if s not in ("SELECT", "PRAGMA")] == [], statements
    assert redeem(provider.url, client, code).status_code == 200


def test_the_grant_is_written_at_redemption_with_the_time_of_the_authorization(
        provider, signed_in):
    from idp.audit.models import AuditEvent
    from idp.authorizations.models import Grant
    from idp.extensions import db

    _username, client, browser = signed_in
    code = sso_code(browser, client)
    with provider.app.app_context():
        granted = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "authorization.granted",
            AuditEvent.client_id == client.client_id)
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())).first()
        grant_id = granted.detail["grant_id"]
        assert db.session.get(Grant, grant_id) is None
    tokens = redeem(provider.url, client, code).json()
    assert "refresh_token" in tokens
    with provider.app.app_context():
        grant = db.session.get(Grant, grant_id)
        assert grant is not None and grant.revoked_at is None
        assert grant.created_at <= granted.created_at


def test_ending_the_accounts_sessions_stops_a_code_not_redeemed_yet(provider, signed_in):
    """A password reset or a suspension ends every session and revokes every
    grant; the code's grant has no row yet, but the code names the session
    generation it was given under."""
    from idp import sessions
    from idp.accounts.service import find_for_login

    username, client, browser = signed_in
    code = sso_code(browser, client)
    with provider.app.app_context():
        sessions.end_all(provider.runtime, find_for_login(provider.runtime, username),
                         "password_reset", revoke_grants=True)
    answer = redeem(provider.url, client, code)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_revoking_the_clients_grants_stops_a_code_not_redeemed_yet(provider, signed_in,
                                                                   monkeypatch):
    from idp.authorizations import service
    from idp.authorizations.service import revoke_client_grants

    _username, client, browser = signed_in
    code = sso_code(browser, client)
    with provider.app.app_context():
        revoke_client_grants(provider.runtime, client.client_id, "test", keep_consents=True)
    answer = redeem(provider.url, client, code)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    # A code given after the revocation is not stopped (beyond the servers'
    # clock skew, which one clock does not need).
    monkeypatch.setattr(service, "SERVER_CLOCK_SKEW", 0)
    fresh = redeem(provider.url, client, sso_code(browser, client))
    assert fresh.status_code == 200, fresh.text


def test_a_code_from_before_an_upgrade_is_invalid_grant_not_an_error(provider, signed_in):
    """A code stored by a version whose record lacked fields (in flight
    across an upgrade) is refused like an unknown code."""
    from idp.oidc.flows.authorization_code import _code_key

    _username, client, browser = signed_in
    code = sso_code(browser, client)
    store = provider.runtime.store
    with provider.app.app_context():
        key = _code_key(provider.runtime, client.client_id, code)
        record = store.get(key)
        del record["issued_at"], record["generation"]
        store.put(key, record, 60)
    answer = requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": client.redirect_uri})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_a_code_given_after_the_accounts_sessions_ended_is_redeemable_at_once(provider):
    """The account's marker names its new session generation: it stops the
    codes given under the old one and no others, so a login right after a
    password reset gives a code that works, however close the clocks."""
    from idp import sessions
    from idp.accounts.service import find_for_login

    username, password, _ = provider.create_account()
    client = provider.create_client()
    with provider.app.app_context():
        sessions.end_all(provider.runtime, find_for_login(provider.runtime, username),
                         "password_reset", revoke_grants=True)
    code = Browser(provider.url).login_for_code(client, username, password,
                                                scope="openid offline_access")["code"]
    answer = redeem(provider.url, client, code)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert requests.get(f"{provider.url}/userinfo", headers={
        "Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
