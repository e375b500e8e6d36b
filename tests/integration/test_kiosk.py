"""Kiosk login: a registered kiosk posts a signed card read; the person is
logged in on the kiosk's browser with amr hwk and a short session, when
their account proved possession of the ID number (a card read of a number
held by name and number only, or by nobody, is linked instead:
tests/integration/test_squatting.py)."""

from __future__ import annotations

import time
import uuid

import jwt as pyjwt
import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from tests.helpers import Browser, callback_params, hidden_inputs, redeem
from tests.integration.test_step_up import level_2_account
from tests.sandbox_support import fresh_person


@pytest.fixture(scope="module")
def kiosk(gw):
    provider, _ = gw
    key = ECKey.generate_key("P-256", parameters={"kid": "kiosk-1"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]}, kiosk=True)
    return client, key


def possession_account(provider, gateway):
    """An account verified with the person's name and number and the
    carrier check of their confirmed phone (a proof of possession):
    ``(username, password, person)``."""
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import verify_carrier

    username, password, person = level_2_account(provider, gateway)
    with provider.app.app_context():
        verify_carrier(provider.runtime, find_by_username(username), None)
    return username, password, person


def _signed(key, claims: dict) -> str:
    return jose_jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])


def card_read(provider, client, key, person, *, card_type="resident_id", lifetime=60,
              iat_offset=0, **changes) -> str:
    now = int(time.time()) + iat_offset
    claims = {"iss": client.client_id, "aud": f"{provider.url}/kiosk/login", "iat": now,
              "exp": now + lifetime, "jti": uuid.uuid4().hex, "card_type": card_type,
              "id_number": person.id_number, "name": person.name}
    if card_type == "social_security":
        claims["card_number"] = person.card_number
    claims.update(changes)
    return _signed(key, claims)


def post(provider, client, key, read: str) -> requests.Response:
    now = int(time.time())
    assertion = _signed(key, {"iss": client.client_id, "sub": client.client_id,
                              "aud": provider.url, "iat": now, "exp": now + 60,
                              "jti": uuid.uuid4().hex})
    return requests.post(f"{provider.url}/kiosk/login", data={
        "client_id": client.client_id, "card_read": read,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})


def test_card_login_on_the_kiosk_browser(gw, kiosk):
    provider, gateway = gw
    client, key = kiosk
    username, _password, person = possession_account(provider, gateway)
    answer = post(provider, client, key, card_read(provider, client, key, person))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["amr"] == ["hwk"] and body["acr"] == "L2" and body["expires_in"] == 60
    assert body["linked"] is True
    assert body["login_url"].startswith(f"{provider.url}/kiosk/enter?ticket=")
    browser = Browser(provider.url)
    entered = browser.session.get(body["login_url"], allow_redirects=False)
    assert entered.status_code == 302
    # A public computer's session: it ends with the browser (and in 5 minutes).
    assert "Max-Age" not in entered.headers["Set-Cookie"]
    # A kiosk is a public machine: its browser is never remembered as known.
    assert "idp_device" not in entered.headers["Set-Cookie"]
    # A department site opened on the kiosk is signed in by SSO with amr hwk.
    rp = provider.create_client()
    response = browser.go(browser.authorize_url(rp))
    tokens = redeem(provider.url, rp, callback_params(response)["code"]).json()
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["hwk"] and claims["acr"] == "L2"
    # The ticket works once.
    again = requests.get(body["login_url"], allow_redirects=False)
    assert again.status_code == 400


def test_kiosk_with_a_second_factor_never_remembers_the_browser(gw, kiosk):
    """The kiosk's browser gets no device cookie, also when the account's
    second factor completes the login there."""
    from tests.integration.test_totp import enrol

    provider, gateway = gw
    client, key = kiosk
    username, _password, person = possession_account(provider, gateway)
    _secret, codes = enrol(provider, username)
    answer = post(provider, client, key, card_read(provider, client, key, person))
    browser = requests.Session()
    entered = browser.get(answer.json()["login_url"], allow_redirects=False)
    assert "/login/otp" in entered.headers["Location"]
    page = browser.get(provider.url + entered.headers["Location"])
    fields = {**hidden_inputs(page.text), "action": "recovery", "recovery_code": codes[0]}
    done = browser.post(f"{provider.url}/login/otp", data=fields, allow_redirects=False)
    assert done.status_code == 303 and "idp_sso" in browser.cookies
    assert "idp_device" not in browser.cookies


def test_social_security_card(gw, kiosk):
    provider, gateway = gw
    client, key = kiosk
    _username, _password, person = possession_account(provider, gateway)
    answer = post(provider, client, key, card_read(provider, client, key, person,
                                                   card_type="social_security"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["linked"] is True
    lost = fresh_person(gateway, card_status="lost")
    refused = post(provider, client, key, card_read(provider, client, key, lost,
                                                    card_type="social_security"))
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"


def test_replay_and_tampering_are_refused(gw, kiosk):
    provider, gateway = gw
    client, key = kiosk
    _username, _password, person = possession_account(provider, gateway)
    read = card_read(provider, client, key, person)
    assert post(provider, client, key, read).status_code == 200
    replay = post(provider, client, key, read)
    assert replay.status_code == 400 and "already used" in replay.json()["error_description"]
    other = ECKey.generate_key("P-256", parameters={"kid": "kiosk-1"}, private=True)
    forged = post(provider, client, key, card_read(provider, client, other, person))
    assert forged.status_code == 400 and "signature" in forged.json()["error_description"]
    for bad in (card_read(provider, client, key, person, lifetime=3600),
                card_read(provider, client, key, person, iat_offset=-600),
                card_read(provider, client, key, person, aud=f"{provider.url}/token"),
                card_read(provider, client, key, person,
                          aud=[f"{provider.url}/kiosk/login", "https://other.example.test"]),
                card_read(provider, client, key, person, card_type="passport"),
                card_read(provider, client, key, person, id_number="12345")):
        answer = post(provider, client, key, bad)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    assert post(provider, client, key, "not-a-jwt").status_code == 400


def test_registry_answers_and_accounts(gw, kiosk):
    provider, gateway = gw
    client, key = kiosk
    _username, _password, person = possession_account(provider, gateway)
    mismatch = post(provider, client, key, card_read(provider, client, key, person,
                                                     name="某某某"))
    assert mismatch.status_code == 403
    # A card no account holds logs into nobody: its browser is offered to
    # link it to the account the person signs in to.
    stranger = fresh_person(gateway)
    unknown = post(provider, client, key, card_read(provider, client, key, stranger))
    assert unknown.status_code == 200, unknown.text
    body = unknown.json()
    assert body["linked"] is False and "acr" not in body and "amr" not in body
    assert body["login_url"].startswith(f"{provider.url}/kiosk/link?ticket=")
    # (A positive answer is cached, so the outage is shown with a card not
    # asked about before.)
    gateway.state.inject_failures("/population/v1/verify", 1)
    down = post(provider, client, key, card_read(provider, client, key, fresh_person(gateway)))
    assert down.status_code == 503 and down.json()["error"] == "temporarily_unavailable"


def test_only_kiosks_may_post_card_reads(gw):
    provider, gateway = gw
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]})
    person = fresh_person(gateway)
    answer = post(provider, client, key, card_read(provider, client, key, person))
    assert answer.status_code == 400 and answer.json()["error"] == "unauthorized_client"
    unauthenticated = requests.post(f"{provider.url}/kiosk/login", data={"card_read": "x"})
    assert unauthenticated.json()["error"] == "invalid_client"


def test_kiosk_clients_need_private_key_jwt(gw):
    from idp.clients.metadata import ClientError, ClientMetadata
    from idp.clients.service import create_client

    provider, _ = gw
    with provider.app.app_context(), pytest.raises(ClientError, match="private_key_jwt"):
        create_client(provider.runtime, ClientMetadata(
            "Kiosk", grant_types=["client_credentials"], kiosk=True))
