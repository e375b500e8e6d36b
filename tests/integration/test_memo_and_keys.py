"""The verified-token memo against key retirement and forgery (checks of
the attack on issue 9's changes, which held)."""

from __future__ import annotations

import requests

from tests.helpers import Browser, pkce_pair, redeem


def _tokens(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client()
    verifier, challenge = pkce_pair()
    code = Browser(provider.url).login_for_code(
        client, username, password, scope="openid", code_challenge=challenge,
        code_challenge_method="S256")["code"]
    return client, redeem(provider.url, client, code, verifier).json()


def _userinfo(provider, token):
    return requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_memoised_token_stops_when_its_key_leaves_the_jwks(make_provider):
    from datetime import timedelta

    from idp.extensions import db
    from idp.oidc.models import SigningKey
    from idp.timeutil import utcnow

    provider = make_provider()
    _client, tokens = _tokens(provider)
    assert _userinfo(provider, tokens["access_token"]) == 200  # memoised now
    with provider.app.app_context():
        old = {row.kid for row in db.session.query(SigningKey).filter(
            SigningKey.retired_at.is_(None))}
        provider.runtime.keys.rotate()
    assert _userinfo(provider, tokens["access_token"]) == 200  # retired, still published
    publish = provider.runtime.settings["keys"]["retired_key_publish_seconds"]
    with provider.app.app_context():
        for row in db.session.query(SigningKey).filter(SigningKey.kid.in_(old)):
            row.retired_at = utcnow() - timedelta(seconds=publish + 1)
        db.session.commit()
        provider.runtime.keys.invalidate()
    assert _userinfo(provider, tokens["access_token"]) == 401


def test_a_forged_token_sharing_a_prefix_with_a_memoised_one_is_refused(provider):
    _client, tokens = _tokens(provider)
    token = tokens["access_token"]
    assert _userinfo(provider, token) == 200
    head, body, sig = token.split(".")
    # A character in the middle (the last ones may only change base64's
    # padding bits, which decode to the same signature).
    middle = len(sig) // 2
    other = "A" if sig[middle] != "A" else "B"
    assert _userinfo(provider, f"{head}.{body}.{sig[:middle]}{other}{sig[middle + 1:]}") == 401
    # A trailing space is stripped by the header parse: the same token.
    assert _userinfo(provider, f"{head}.{body}.{sig} ") in (200, 401)
