"""Token endpoint rules: code single use, PKCE, client authentication,
refresh rotation and family revocation, client credentials (RFC 6749, 7636, 9700)."""

from __future__ import annotations

import concurrent.futures
import time

import jwt as pyjwt
import pytest
import requests
from sqlalchemy import func, select

from tests.helpers import Browser, callback_params, pkce_pair, redeem


def _code(provider, client, account, **params) -> str:
    browser = Browser(provider.url)
    return browser.login_for_code(client, account[0], account[1], **params)["code"]


@pytest.fixture
def account(provider):
    return provider.create_account()


def _refresh(provider, client, refresh_token, **extra) -> requests.Response:
    return requests.post(f"{provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, **extra}, auth=client.auth)


def _userinfo(provider, access_token) -> requests.Response:
    return requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {access_token}"})


def test_code_reuse_fails_and_revokes_tokens(provider, account):
    client = provider.create_client()
    code = _code(provider, client, account, scope="openid offline_access")
    first = redeem(provider.url, client, code)
    assert first.status_code == 200
    tokens = first.json()
    assert _userinfo(provider, tokens["access_token"]).status_code == 200
    second = redeem(provider.url, client, code)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: tokens issued from the replayed code are revoked.
    assert _userinfo(provider, tokens["access_token"]).status_code == 401
    assert _refresh(provider, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_code_presented_by_another_client_is_neither_used_up_nor_a_replay(provider,
                                                                            account):
    """The code was taken from the store before its client was compared:
    another client holding it used it up, and the owner's redemption then
    counted as a replay that revoked the owner's grant (RFC 6749 §4.1.3,
    §10.5). It is now not found for any client but its own."""
    owner = provider.create_client()
    other = provider.create_client()
    code = _code(provider, owner, account, scope="openid offline_access")
    for _ in range(2):
        stolen = requests.post(f"{provider.url}/token", auth=other.auth, data={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": owner.redirect_uri})
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    redeemed = redeem(provider.url, owner, code)
    assert redeemed.status_code == 200, redeemed.text
    tokens = redeemed.json()
    assert _userinfo(provider, tokens["access_token"]).status_code == 200
    assert _refresh(provider, owner, tokens["refresh_token"]).status_code == 200


def test_concurrent_code_redemption_has_one_winner(provider, account):
    """O-9: the same code redeemed twice at once."""
    client = provider.create_client()
    code = _code(provider, client, account)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: redeem(provider.url, client, code), range(4)))
    winners = [r for r in results if r.status_code == 200]
    losers = [r for r in results if r.status_code != 200]
    assert len(winners) == 1
    assert all(r.json()["error"] == "invalid_grant" for r in losers)
    assert _userinfo(provider, winners[0].json()["access_token"]).status_code == 401


@pytest.mark.parametrize("lands", ["after_take", "before_issue"])
def test_a_replay_landing_between_take_and_issue_does_not_fail_the_first_redemption(
        provider, account, monkeypatch, lands):
    """O-9, the interleavings CI met: the replay revoked the grant after the
    first redemption had taken the code, right after the take (before it
    noted the time) or before it read the grant, and both requests answered
    ``invalid_grant``. The first still answers, with tokens that are dead."""
    from idp.oidc.flows.authorization_code import AuthorizationCodeGrant

    client = provider.create_client()
    code = _code(provider, client, account, scope="openid offline_access")
    replays = []

    def replay_once():
        if not replays:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                replays.append(pool.submit(redeem, provider.url, client, code).result())

    if lands == "after_take":
        store = provider.runtime.store
        take = store.take

        def take_then_replay(key):
            data = take(key)
            if data is not None:
                replay_once()
            return data

        monkeypatch.setattr(store, "take", take_then_replay)
    else:
        authenticate_user = AuthorizationCodeGrant.authenticate_user

        def replay_first(self, authorization_code):
            replay_once()
            return authenticate_user(self, authorization_code)

        monkeypatch.setattr(AuthorizationCodeGrant, "authenticate_user", replay_first)
    first = redeem(provider.url, client, code)
    monkeypatch.undo()
    assert replays[0].status_code == 400 and replays[0].json()["error"] == "invalid_grant"
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert _userinfo(provider, tokens["access_token"]).status_code == 401
    assert _refresh(provider, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_pkce_verifier_mismatch(provider, account):
    client = provider.create_client()
    verifier, challenge = pkce_pair()
    code = _code(provider, client, account, code_challenge=challenge,
                 code_challenge_method="S256")
    other, _ = pkce_pair()
    response = redeem(provider.url, client, code, other)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_pkce_verifier_without_challenge_is_refused(provider, account):
    client = provider.create_client()
    code = _code(provider, client, account)
    verifier, _ = pkce_pair()
    response = redeem(provider.url, client, code, verifier)
    assert response.json()["error"] == "invalid_request"


def test_pkce_plain_is_refused(provider):
    client = provider.create_client()
    browser = Browser(provider.url)
    response = browser.go(browser.authorize_url(client, code_challenge="a" * 43,
                                                code_challenge_method="plain"))
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]


def test_public_client_must_use_pkce(provider, account):
    client = provider.create_client(public=True)
    browser = Browser(provider.url)
    response = browser.go(browser.authorize_url(client))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(client.redirect_uri)
    assert "error=invalid_request" in response.headers["Location"]
    verifier, challenge = pkce_pair()
    code = _code(provider, client, account, code_challenge=challenge,
                 code_challenge_method="S256")
    assert redeem(provider.url, client, code).json()["error"] == "invalid_request"
    code = _code(provider, client, account, code_challenge=challenge,
                 code_challenge_method="S256")
    assert redeem(provider.url, client, code, verifier).status_code == 200


def test_wrong_client_secret(provider, account):
    client = provider.create_client()
    code = _code(provider, client, account)
    response = requests.post(f"{provider.url}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri},
        auth=(client.client_id, client.client_secret + "x"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_code_of_another_client_is_refused(provider, account):
    first, second = provider.create_client(), provider.create_client()
    code = _code(provider, first, account)
    response = requests.post(f"{provider.url}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": first.redirect_uri},
        auth=second.auth)
    assert response.json()["error"] == "invalid_grant"


def test_redirect_uri_must_match_at_token_endpoint(provider, account):
    client = provider.create_client()
    code = _code(provider, client, account)
    response = requests.post(f"{provider.url}/token", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": client.redirect_uri + "/other"}, auth=client.auth)
    assert response.json()["error"] == "invalid_grant"


def test_expired_code(make_provider):
    short = make_provider(tokens={"authorization_code_ttl": 1})
    client = short.create_client()
    account = short.create_account()
    code = _code(short, client, account)
    time.sleep(2.2)
    response = redeem(short.url, client, code)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_refresh_rotation_and_family_revocation(provider, account):
    client = provider.create_client()
    tokens = redeem(provider.url, client,
                    _code(provider, client, account, scope="openid offline_access")).json()
    rotated = _refresh(provider, client, tokens["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    # Reusing the rotated token is refused and revokes the whole family.
    reuse = _refresh(provider, client, tokens["refresh_token"])
    assert reuse.json()["error"] == "invalid_grant"
    assert _refresh(provider, client, new["refresh_token"]).json()["error"] == "invalid_grant"
    assert _userinfo(provider, new["access_token"]).status_code == 401


def test_concurrent_refresh_rotates_at_most_once(provider, account):
    """O-9: the same refresh token used by two concurrent requests."""
    client = provider.create_client()
    tokens = redeem(provider.url, client,
                    _code(provider, client, account, scope="openid offline_access")).json()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(
            lambda _: _refresh(provider, client, tokens["refresh_token"]), range(4)))
    winners = [r.json() for r in results if r.status_code == 200]
    assert len(winners) <= 1
    assert len(results) - len(winners) >= 3
    for won in winners:
        assert _refresh(provider, client, won["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_keeps_identity(provider, account):
    """O-1: same iss, sub, aud and original auth_time; nonce absent or the original."""
    client = provider.create_client()
    tokens = redeem(provider.url, client, _code(
        provider, client, account, scope="openid offline_access", nonce="N1")).json()
    first = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    time.sleep(1.1)
    refreshed = _refresh(provider, client, tokens["refresh_token"]).json()
    second = pyjwt.decode(refreshed["id_token"], options={"verify_signature": False})
    for claim in ("iss", "sub", "aud", "auth_time"):
        assert second[claim] == first[claim]
    assert second.get("azp") == first.get("azp")
    assert second.get("nonce") in (None, "N1")
    assert second["iat"] >= first["iat"]


def test_refresh_scope_cannot_grow(provider, account):
    client = provider.create_client()
    tokens = redeem(provider.url, client, _code(
        provider, client, account, scope="openid offline_access")).json()
    response = _refresh(provider, client, tokens["refresh_token"],
                        scope="openid offline_access email")
    assert response.json()["error"] == "invalid_scope"


def test_no_refresh_token_without_offline_access(provider, account):
    client = provider.create_client()
    tokens = redeem(provider.url, client, _code(provider, client, account)).json()
    assert "refresh_token" not in tokens


def test_refresh_token_of_another_client(provider, account):
    first, second = provider.create_client(), provider.create_client()
    tokens = redeem(provider.url, first, _code(
        provider, first, account, scope="openid offline_access")).json()
    assert _refresh(provider, second, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_client_credentials(provider):
    client = provider.create_client(grant_types=["client_credentials"])
    response = requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                             auth=client.auth)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and "refresh_token" not in body
    header = pyjwt.get_unverified_header(body["access_token"])
    claims = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert header["typ"] == "at+jwt"
    assert claims["sub"] == client.client_id and claims["client_id"] == client.client_id
    for name in ("iat", "exp"):
        assert isinstance(claims[name], int)
    assert "nbf" not in claims or claims["nbf"] <= claims["iat"]
    # A client token is not a user's: userinfo refuses it.
    assert _userinfo(provider, body["access_token"]).status_code in (401, 403)


def test_client_credentials_not_allowed_for_code_client(provider):
    client = provider.create_client()
    response = requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                             auth=client.auth)
    assert response.json()["error"] == "unauthorized_client"


def test_client_credentials_with_post_auth(provider):
    from idp.clients.metadata import ClientMetadata
    from idp.clients.service import create_client
    from idp.extensions import db

    with provider.app.app_context():
        client, secret = create_client(provider.runtime, ClientMetadata(
            "post", grant_types=["client_credentials"],
            token_endpoint_auth_method="client_secret_post"))
        db.session.commit()
        client_id = client.client_id
    response = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
    assert response.status_code == 200
    # Issue 7: the same secret by HTTP Basic works too (not registered strict).
    basic = requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                          auth=(client_id, secret))
    assert basic.status_code == 200, basic.text


def test_unsupported_grant_types(provider):
    client = provider.create_client()
    for grant in ("password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"):
        response = requests.post(f"{provider.url}/token", data={
            "grant_type": grant, "username": "x", "password": "y"}, auth=client.auth)
        assert response.json()["error"] == "unsupported_grant_type"


def test_token_endpoint_refuses_get(provider):
    response = requests.get(f"{provider.url}/token")
    assert response.status_code == 405


def test_callback_carries_state_and_iss(provider, account):
    client = provider.create_client()
    browser = Browser(provider.url)
    response = browser.go(browser.authorize_url(client, state="xyz"), username=account[0],
                          password=account[1])
    params = callback_params(response)
    assert params["state"] == "xyz" and params["iss"] == provider.url


def test_token_issuance_is_audited(provider):
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.extensions import db

    client = provider.create_client(grant_types=["client_credentials"])
    for _ in range(3):
        requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                      auth=client.auth)
    with provider.app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(
            AuditEvent.client_id == client.client_id, AuditEvent.event == "token.issued")))
    assert len(events) == 3
    assert events[0].detail["grant_type"] == "client_credentials"


def test_slow_first_redemption_still_wins_when_replayed(provider, account, monkeypatch):
    """O-9 with the replay landing while the first redemption is still working:
    the first still gets its answer, the replay gets invalid_grant, and the
    tokens issued are revoked (this once failed both requests)."""
    import threading

    import idp.oidc.flows.authorization_code as flow_module

    original = flow_module.issue_user_tokens
    entered = threading.Event()

    def slow_issue(*args, **kwargs):
        entered.set()
        time.sleep(0.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(flow_module, "issue_user_tokens", slow_issue)
    client = provider.create_client()
    code = _code(provider, client, account)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(redeem, provider.url, client, code)
        entered.wait(5)
        second = redeem(provider.url, client, code)
        first = first.result()
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert first.status_code == 200
    assert _userinfo(provider, first.json()["access_token"]).status_code == 401


def test_a_refused_refresh_leaves_its_token_unused(provider, account):
    """A refresh refused for its request (a scope beyond the grant) does not
    use the token up: the client's corrected retry is not taken for a
    replay that would revoke the grant (found by the attack on issue 9)."""
    client = provider.create_client()
    tokens = redeem(provider.url, client, _code(
        provider, client, account, scope="openid offline_access")).json()
    wider = _refresh(provider, client, tokens["refresh_token"], scope="openid email")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    retried = _refresh(provider, client, tokens["refresh_token"])
    assert retried.status_code == 200, retried.text
    assert _userinfo(provider, retried.json()["access_token"]).status_code == 200


def _held_refreshes(provider, monkeypatch, client, refresh_token, held: int):
    """Start ``held`` refreshes of ``refresh_token`` that stop just before
    their rotation's write; returns ``(futures, release)``."""
    import threading

    import idp.oidc.flows.refresh_token as flow_module

    reached, release = threading.Semaphore(0), threading.Event()
    calls = []

    def first_ones_wait(original):
        def wait_first(*args, **kwargs):
            calls.append(args)
            if len(calls) <= held:
                reached.release()
                assert release.wait(20)
            return original(*args, **kwargs)
        return wait_first

    # The write of the view's rotation and of the lane's (a group commit).
    for name in ("consume_refresh_token", "rotate_in_group"):
        monkeypatch.setattr(flow_module, name, first_ones_wait(getattr(flow_module, name)))
    pool = concurrent.futures.ThreadPoolExecutor(held)
    futures = [pool.submit(_refresh, provider, client, refresh_token) for _ in range(held)]
    for _ in range(held):
        assert reached.acquire(timeout=10)
    pool.shutdown(wait=False)
    return futures, release


def _refresh_rows_and_events(provider, client) -> tuple[int, int, int, int]:
    """``(refresh tokens, live refresh tokens, token.issued, grant.revoked)``
    of ``client``."""
    from idp.audit.models import AuditEvent
    from idp.authorizations.models import Grant, RefreshToken
    from idp.extensions import db

    with provider.app.app_context():
        grant_ids = select(Grant.id).where(Grant.client_id == client.client_id)
        rows = db.session.scalar(select(func.count()).select_from(RefreshToken).where(
            RefreshToken.grant_id.in_(grant_ids)))
        live = db.session.scalar(select(func.count()).select_from(RefreshToken).where(
            RefreshToken.grant_id.in_(grant_ids), RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None)))
        events = [db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.client_id == client.client_id, AuditEvent.event == name))
            for name in ("token.issued", "grant.revoked")]
    return rows, live, *events


def test_rotations_overtaken_by_another_are_replays(provider, account, monkeypatch):
    """The rotation's write comes last, once the new tokens are signed
    (SQLite's write lock is then held for the writes alone): requests that
    found the token unused but are overtaken before their write lose as a
    replay would. They get invalid_grant, the family is revoked once (one
    audit event, found doubled by the attack on issue 9), the winner's
    tokens with it, and nothing the losers made is stored or audited."""
    client = provider.create_client()
    tokens = redeem(provider.url, client,
                    _code(provider, client, account, scope="openid offline_access")).json()
    overtaken, release = _held_refreshes(provider, monkeypatch, client,
                                         tokens["refresh_token"], 2)
    winner = _refresh(provider, client, tokens["refresh_token"])
    release.set()
    for loser in overtaken:
        answer = loser.result(timeout=20)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_grant"
    assert winner.status_code == 200, winner.text
    assert _userinfo(provider, winner.json()["access_token"]).status_code == 401
    # The code's token and the winner's; the code's and the winner's events.
    assert _refresh_rows_and_events(provider, client) == (2, 0, 2, 1)


@pytest.mark.parametrize("revocation", ["grant revoked", "account suspended"])
def test_a_revocation_during_a_rotation_stops_it(provider, monkeypatch, revocation):
    """A revocation that lands after the refresh found its token live but
    before its write: the rotation refuses (invalid_grant) instead of giving
    tokens for a revoked grant (an ID token for a suspended account; found
    by the attack on issue 9), and stores and audits nothing."""
    from idp.accounts.models import Account
    from idp.admin.service import suspend
    from idp.authorizations.models import Grant
    from idp.authorizations.service import revoke_grant
    from idp.extensions import db

    username, password, _ = provider.create_account()
    client = provider.create_client()
    tokens = redeem(provider.url, client, _code(provider, client, (username, password),
                                                scope="openid offline_access")).json()
    (held,), release = _held_refreshes(provider, monkeypatch, client,
                                       tokens["refresh_token"], 1)
    with provider.app.app_context():
        if revocation == "grant revoked":
            grant_id = db.session.scalar(select(Grant.id).where(
                Grant.client_id == client.client_id))
            revoke_grant(provider.runtime, grant_id, "test")
        else:
            account = db.session.scalar(select(Account).where(Account.username == username))
            suspend(provider.runtime, account, "operator", "test")
        db.session.commit()
    release.set()
    answer = held.result(timeout=20)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_grant"
    rows, live, issued, _ = _refresh_rows_and_events(provider, client)
    assert (rows, live, issued) == (1, 0, 1)
