"""SSO sessions below HTTP (idp.sessions): resolving a cookie, ending one
session, ending all of an account's, and the one rule about the grants
they revoke."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import sessions, single_logout
from idp.audit.models import AuditEvent
from idp.authorizations.models import Grant
from idp.authorizations.service import create_grant
from idp.extensions import db
from idp.sessions import create_session, load_session


@pytest.fixture
def client_id(client):
    return client.client_id


@pytest.fixture
def notified(monkeypatch) -> list[dict]:
    """Calls of the single-logout hook: (sid, reason) of each ended session."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(single_logout, "announce",
                        lambda rt, session, reason: calls.append((session.sid, reason)))
    return calls


def start(rt, account):
    return create_session(rt.store, account.id, ["pwd"], 600, account.session_generation)


def grant(rt, account, client_id, sid):
    return create_grant(rt, account_id=account.id, client_id=client_id, scope="openid",
                        claims=None, sid=sid, auth_time=0, acr=None, amr=["pwd"],
                        nonce=None).id


def live(*grant_ids: str) -> set[str]:
    return set(db.session.scalars(select(Grant.id).where(
        Grant.id.in_(grant_ids), Grant.revoked_at.is_(None))))


def revocations(account) -> dict[str, str]:
    """The account's ``grant.revoked`` audit events: grant id -> reason."""
    rows = db.session.scalars(select(AuditEvent).where(
        AuditEvent.account_id == account.id, AuditEvent.event == "grant.revoked"))
    return {row.detail["grant_id"]: row.detail["reason"] for row in rows}


def test_resolve_finds_a_live_session_and_its_account(rt, account):
    sso = start(rt, account)
    found, owner = sessions.resolve(rt, sso.handle)
    assert found.sid == sso.sid and owner.id == account.id
    assert sessions.resolve(rt, None) == (None, None)
    assert sessions.resolve(rt, "no-such-handle") == (None, None)
    # A suspended account's session is found, without an account.
    account.status = "suspended"
    db.session.commit()
    found, owner = sessions.resolve(rt, sso.handle)
    assert found.sid == sso.sid and owner is None


def test_end_ends_one_session_and_keeps_grants(rt, account, client_id, notified):
    ended, other = start(rt, account), start(rt, account)
    grants = grant(rt, account, client_id, ended.sid), grant(rt, account, client_id, other.sid)
    assert sessions.end(rt, ended, "logout", revoke_grants=False) == 0
    assert load_session(rt.store, ended.handle) is None
    assert sessions.resolve(rt, ended.handle) == (None, None)
    assert sessions.resolve(rt, other.handle)[0].sid == other.sid
    assert live(*grants) == set(grants) and revocations(account) == {}
    assert notified == [(ended.sid, "logout")]
    # Ending it again tells no one twice.
    sessions.end(rt, ended, "logout", revoke_grants=False)
    assert notified == [(ended.sid, "logout")]


def test_end_may_revoke_the_grants_of_that_session_only(rt, account, client_id):
    ended, other = start(rt, account), start(rt, account)
    mine, theirs = grant(rt, account, client_id, ended.sid), grant(rt, account, client_id,
                                                                   other.sid)
    without_session = grant(rt, account, client_id, None)
    assert sessions.end(rt, ended, "logout", revoke_grants=True, ip="192.0.2.1") == 1
    assert live(mine, theirs, without_session) == {theirs, without_session}
    assert revocations(account) == {mine: "logout"}


def test_end_all_ends_every_session_through_the_generation(rt, account, client_id, notified):
    first, second = start(rt, account), start(rt, account)
    kept = grant(rt, account, client_id, first.sid)
    generation = account.session_generation
    ended = sessions.end_all(rt, account, "phone_changed", revoke_grants=False)
    db.session.commit()
    assert ended == sessions.EndedSessions(grants_revoked=0, kept=None, ended=2)
    assert account.session_generation == generation + 1
    for sso in (first, second):
        assert load_session(rt.store, sso.handle) is None
        assert sessions.resolve(rt, sso.handle) == (None, None)
    assert live(kept) == {kept}
    assert sorted(notified) == sorted([(first.sid, "phone_changed"),
                                       (second.sid, "phone_changed")])
    assert sessions.list_sessions(rt.store, account.id) == []
    # A session started in the new generation lives.
    assert sessions.resolve(rt, start(rt, account).handle)[1].id == account.id


def test_end_all_may_revoke_every_grant_of_the_account(rt, account, client_id, idp):
    sso = start(rt, account)
    grants = (grant(rt, account, client_id, sso.sid), grant(rt, account, client_id, None),
              grant(rt, account, idp.create_client().client_id, "another-sid"))
    ended = sessions.end_all(rt, account, "account_suspended", revoke_grants=True)
    db.session.commit()
    assert ended.grants_revoked == 3 and live(*grants) == set()
    assert revocations(account) == dict.fromkeys(grants, "account_suspended")


def test_end_all_may_keep_one_session_and_its_grants(rt, account, client_id, notified):
    keep, other = start(rt, account), start(rt, account)
    kept_grant = grant(rt, account, client_id, keep.sid)
    others = grant(rt, account, client_id, other.sid), grant(rt, account, client_id, None)
    ended = sessions.end_all(rt, account, "password_changed", revoke_grants=True, keep=keep,
                             ip="192.0.2.1")
    db.session.commit()
    renewed = ended.kept
    assert ended.grants_revoked == 2
    assert live(kept_grant, *others) == {kept_grant}
    assert revocations(account) == dict.fromkeys(others, "password_changed")
    # The kept session goes on under a new cookie value in the new generation.
    assert renewed.sid == keep.sid and renewed.handle != keep.handle
    assert renewed.generation == account.session_generation
    assert sessions.resolve(rt, renewed.handle)[1].id == account.id
    assert sessions.resolve(rt, keep.handle) == (None, None)
    assert sessions.resolve(rt, other.handle) == (None, None)
    assert notified == [(other.sid, "password_changed")]
    assert [s.sid for s in sessions.list_sessions(rt.store, account.id)] == [keep.sid]


def test_a_session_the_list_missed_still_ends_through_the_generation(rt, account, notified):
    old = start(rt, account)
    # As a session started before the account's list existed.
    rt.store.map_delete(f"sso_account:{account.id}", old.sid)
    sessions.end_all(rt, account, "account_suspended", revoke_grants=False)
    db.session.commit()
    assert load_session(rt.store, old.handle) is not None
    assert sessions.resolve(rt, old.handle) == (None, None)
    assert notified == []


def test_renew_moves_the_session_to_a_new_handle(rt, account):
    sso = start(rt, account)
    renewed = sessions.renew(rt, sso, reauth_at=123)
    assert renewed.handle != sso.handle and renewed.sid == sso.sid
    assert load_session(rt.store, sso.handle) is None
    assert load_session(rt.store, renewed.handle).reauth_at == 123
