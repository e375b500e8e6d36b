"""RP-initiated logout below HTTP (idp.oidc.logout): the hint, the
redirect target, when the user must confirm, and the end of the session."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import single_logout
from idp.audit.models import AuditEvent
from idp.authorizations.models import Grant
from idp.authorizations.service import create_grant
from idp.extensions import db
from idp.oidc import logout
from idp.oidc.subjects import client_sid
from idp.oidc.tokens import issue_id_token
from idp.sessions import create_session, load_session


def hint_for(rt, client, account, sid: str | None, **claims) -> str:
    return issue_id_token(rt, client_id=client.client_id, alg="ES256", subject=account.subject,
                          auth_time=0, nonce=None, acr=None, amr=["pwd"], sid=sid,
                          access_token=None, extra_claims=claims)


def test_check_hint(rt, client, account):
    assert logout.check_hint(rt, None, "any") == (None, "any")
    hint = hint_for(rt, client, account, "s1")
    claims, client_id = logout.check_hint(rt, hint, None)
    assert claims["sid"] == "s1" and client_id == client.client_id
    assert logout.check_hint(rt, hint, client.client_id)[1] == client.client_id
    with pytest.raises(logout.LogoutRequestError, match="does not match"):
        logout.check_hint(rt, hint, "another-client")
    with pytest.raises(logout.LogoutRequestError, match="not valid"):
        logout.check_hint(rt, hint[:-4] + "AAAA", None)
    with pytest.raises(logout.LogoutRequestError, match="not valid"):
        logout.check_hint(rt, "not-a-jwt", None)


def test_check_target(rt, client):
    info = rt.clients.get(client.client_id)
    target = client.post_logout_redirect_uri
    assert logout.check_target(info, None, "s") is None
    assert logout.check_target(info, target, None) == target
    assert logout.check_target(info, target, "xyz") == f"{target}?state=xyz"
    for registered, asked in ((info, target + "/more"), (info, "https://evil.example/"),
                              (None, target)):
        with pytest.raises(logout.LogoutRequestError, match="not registered"):
            logout.check_target(registered, asked, None)


def test_check_request_takes_the_client_from_the_hint(rt, client, account):
    hint = hint_for(rt, client, account, "s1")
    checked = logout.check_request(rt, {"id_token_hint": hint, "state": "st",
                                        "post_logout_redirect_uri":
                                            client.post_logout_redirect_uri})
    assert checked.client_id == client.client_id and checked.client.client_id == client.client_id
    assert checked.target == client.post_logout_redirect_uri + "?state=st"
    assert checked.hint_claims["sid"] == "s1"
    # Without a client the target cannot be checked.
    with pytest.raises(logout.LogoutRequestError):
        logout.check_request(rt, {"post_logout_redirect_uri": client.post_logout_redirect_uri})
    assert logout.check_request(rt, {}) == logout.LogoutRequest(None, None, None, None)


def test_needs_confirmation_unless_the_hint_names_the_session(idp, rt, client, account):
    sso = create_session(rt.store, account.id, ["pwd"], 600, account.session_generation)
    pairwise = idp.create_client(subject_type="pairwise")
    pairwise_info = rt.clients.get(pairwise.client_id)

    def needs(hint: str | None, sso=sso, confirmed=False) -> bool:
        params = {"id_token_hint": hint} if hint else {}
        return logout.needs_confirmation(rt, logout.check_request(rt, params), sso, confirmed)

    assert needs(None, sso=None) is False
    assert needs(None, confirmed=True) is False
    assert needs(None) is True
    assert needs(hint_for(rt, client, account, sso.sid)) is False
    assert needs(hint_for(rt, client, account, "another-session")) is True
    assert needs(hint_for(rt, client, account, None)) is True
    # A pairwise client saw its own sid; the session's own does not match.
    own = client_sid(rt, pairwise_info, sso.sid)
    assert own != sso.sid
    assert needs(hint_for(rt, pairwise, account, own)) is False
    assert needs(hint_for(rt, pairwise, account, sso.sid)) is True


def test_end_ends_the_session_keeps_grants_and_audits(rt, client, account, monkeypatch):
    notified: list[tuple] = []
    monkeypatch.setattr(single_logout, "announce",
                        lambda rt, session, reason: notified.append((reason, session.sid)))
    sso = create_session(rt.store, account.id, ["pwd"], 600, account.session_generation)
    grant = create_grant(rt, account_id=account.id, client_id=client.client_id,
                         scope="openid", claims=None, sid=sso.sid, auth_time=0, acr=None,
                         amr=["pwd"], nonce=None)
    logout.end(rt, sso, client.client_id, "192.0.2.7")
    assert load_session(rt.store, sso.handle) is None
    assert db.session.get(Grant, grant.id).revoked_at is None
    assert notified == [("logout", sso.sid)]
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.account_id == account.id, AuditEvent.event == "logout")).one()
    assert (event.client_id, event.ip, event.detail) == (client.client_id, "192.0.2.7",
                                                         {"sid": sso.sid})
