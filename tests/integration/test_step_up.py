"""Step-up: a relying party asks for a level the login does not have; the
user verifies further and adds a factor in the browser flow, or the request
ends with unmet_authentication_requirements."""

from __future__ import annotations

from urllib.parse import urljoin

import jwt as pyjwt
import pytest

from connectors.sandbox import read_outbox
from tests.helpers import Browser, callback_params, hidden_inputs, redeem
from tests.reauth_support import reauth_with_sms
from tests.sandbox_support import fresh_person


def level_2_account(provider, gateway):
    """An account verified to level 2 with the person's confirmed phone:
    ``(username, password, person)``."""
    from idp.accounts.service import find_by_username, set_phone_number
    from idp.accounts.verification import verify_population
    from idp.extensions import db

    person = fresh_person(gateway)
    username, password, _ = provider.create_account()
    with provider.app.app_context():
        account = find_by_username(username)
        set_phone_number(provider.runtime, account, person.phone, verified=True)
        db.session.commit()
        verify_population(provider.runtime, account, person.name, person.id_number, None)
    return username, password, person


def follow(browser: Browser, response):
    """Follow a provider redirect (a relative Location) with the browser."""
    return browser.go(urljoin(browser.base + "/", response.headers["Location"]))


def post_form(browser: Browser, page, path: str, **fields):
    data = hidden_inputs(page.text)
    data.update(fields)
    return browser.session.post(browser.base + path, data=data, allow_redirects=False)


VERIFIED_CLAIMS_REQUEST = {"verified_claims": {
    "verification": {"trust_framework": None, "evidence": None}, "claims": {"name": None}}}


def test_level_3_request_steps_a_level_2_user_up(gw):
    import json

    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(
        client, acr_values="L3", nonce="n3", scope="openid realname",
        claims=json.dumps({"id_token": VERIFIED_CLAIMS_REQUEST})),
        username=username, password=password)
    assert page.status_code == 200 and "/login/step-up" in page.url
    assert 'id="verify"' in page.text and "/account/verify/strong" in page.text
    # 1. Verify more: the social security card registers a login identifier
    # but is knowledge (issue 7: its number is printed on it), so the page
    # stays; the carrier check of the confirmed phone lifts the identity.
    strong_url = page.text.split('id="verify" href="')[1].split('"')[0].replace("&amp;", "&")
    strong = browser.session.get(provider.url + strong_url)
    card = post_form(browser, strong, "/account/verify/strong",
                     card_number=person.card_number, method="card")
    assert card.status_code == 303 and "/account/verify/strong" in card.headers["Location"]
    strong = browser.session.get(provider.url + card.headers["Location"])
    assert "you can sign in with its number" in strong.text
    done = post_form(browser, strong, "/account/verify/strong", method="carrier")
    assert done.status_code == 303 and "/authorize/resume" in done.headers["Location"]
    # 2. A password login alone caps at level 2: add a factor, a code by SMS.
    page = follow(browser, done)
    assert "/login/step-up" in page.url and 'value="send_sms"' in page.text
    assert person.phone[-4:] in page.text and person.phone not in page.text
    sent = post_form(browser, page, "/login/step-up", action="send_sms")
    assert sent.status_code == 200
    code = read_outbox(gateway.data_path, person.phone)[-1]["params"]["code"]
    stepped = post_form(browser, sent, "/login/step-up", action="sms", code=code)
    assert stepped.status_code == 303
    callback = follow(browser, stepped)
    params = callback_params(callback)
    tokens = redeem(provider.url, client, params["code"]).json()
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["acr"] == "L3"
    assert claims["amr"] == ["pwd", "sms", "mfa"] and claims["nonce"] == "n3"
    verified = claims["verified_claims"]
    assert verified["claims"] == {"name": person.name}
    assert verified["verification"]["trust_framework"] == "cn_provincial_gov"
    assert verified["verification"]["assurance_level"] == "L3"
    methods = [e["record"]["type"] for e in verified["verification"]["evidence"]]
    assert sorted(methods) == ["mobile_operator_register", "population_register",
                               "social_security_register"]
    access = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert access["acr"] == "L3"
    # The SSO session now has level 3: a second request is answered at once.
    again = browser.go(browser.authorize_url(client, acr_values="L3"))
    assert again.status_code == 302 and again.headers["Location"].startswith(
        client.redirect_uri)


def test_without_a_request_the_achieved_level_is_reported(gw):
    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    params = browser.login_for_code(client, username, password)
    tokens = redeem(provider.url, client, params["code"]).json()
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["acr"] == "L2" and claims["amr"] == ["pwd"]


def test_a_level_no_login_can_reach_is_unmet(gw):
    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    # Level 4 needs a counter visit: no step-up in the browser can reach it.
    response = browser.go(browser.authorize_url(client, acr_values="L4"),
                          username=username, password=password)
    assert response.status_code == 302
    params = callback_params(response)
    assert params["error"] == "unmet_authentication_requirements"
    assert params["iss"] == provider.url


def test_prompt_none_cannot_step_up(gw):
    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    browser.login_for_code(client, username, password)
    response = browser.go(browser.authorize_url(client, acr_values="L3", prompt="none"))
    assert callback_params(response)["error"] == "interaction_required"


def test_cancel_ends_with_unmet(gw):
    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, acr_values="L3"), username=username,
                      password=password)
    cancelled = post_form(browser, page, "/login/step-up", action="cancel")
    assert cancelled.status_code == 303
    assert callback_params(cancelled)["error"] == "unmet_authentication_requirements"


def test_the_verification_pages_lead_back_to_the_application(gw):
    """Regression: the strong-verification page opened from the step-up
    page offered only "Back to your account"; now also the step-up page's
    own cancel, which tells the application."""
    import re

    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    name = f"Test client {client.redirect_uri.split('/')[3]}"
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, acr_values="L3", state="st"),
                      username=username, password=password)
    strong_url = page.text.split('id="verify" href="')[1].split('"')[0].replace("&amp;", "&")
    assert strong_url.startswith("/account/verify/strong?i=")
    browser.session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    strong = browser.session.get(provider.url + strong_url)
    cancel = re.search(r'<form method="post" action="/login/step-up" class="alt">(.*?)</form>',
                       strong.text, re.S)
    assert cancel is not None
    assert f'<button type="submit" name="action" value="cancel">取消并返回 {name}</button>' \
        in cancel.group(1)
    assert '<a href="/account">返回我的账户</a>' in strong.text
    # Without a pending request the page leads back to the account only.
    alone = browser.session.get(f"{provider.url}/account/verify/strong")
    assert 'action="/login/step-up"' not in alone.text
    cancelled = browser.session.post(f"{provider.url}/login/step-up",
                                     data=hidden_inputs(cancel.group(1)) | {"action": "cancel"},
                                     allow_redirects=False)
    assert cancelled.status_code == 303
    params = callback_params(cancelled)
    assert params["error"] == "unmet_authentication_requirements" and params["state"] == "st"


def test_client_minimum_steps_up_without_acr_values(gw):
    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client(min_acr="L3")
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client), username=username, password=password)
    assert "/login/step-up" in page.url


def test_unverified_account_is_sent_to_verification(gw):
    provider, _ = gw
    username, password, _ = provider.create_account()
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, acr_values="L2"), username=username,
                      password=password)
    assert "/login/step-up" in page.url and "/account/verify?i=" in page.text


def test_essential_acr_reports_a_requested_value(gw):
    import json

    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["L1", "L2"]}}})
    params = browser.login_for_code(client, username, password, claims=claims)
    tokens = redeem(provider.url, client, params["code"]).json()
    assert pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["acr"] == "L2"
    lower = json.dumps({"id_token": {"acr": {"essential": True, "values": ["L1"]}}})
    params = browser.login_for_code(client, "", "", claims=lower)
    tokens = redeem(provider.url, client, params["code"]).json()
    assert pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["acr"] == "L1"


def test_setting_up_an_authenticator_ends_older_sessions(gw):
    """Regression: a session opened before TOTP was set up kept working
    without it (and could replace the recovery codes). Setting one up ends
    the sessions; the next login with it reaches L3 at once."""
    import re
    import time

    import pyotp

    from idp.accounts.service import find_by_username
    from idp.accounts.verification import verify_carrier

    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    with provider.app.app_context():
        verify_carrier(provider.runtime, find_by_username(username), None)
    older = Browser(provider.url)
    older.go(f"{provider.url}/account", username=username, password=password)
    browser = Browser(provider.url)
    browser.go(f"{provider.url}/account", username=username, password=password)
    assert reauth_with_sms(browser.session, provider.url, gateway, person.phone,
                           password).status_code == 303
    url = f"{provider.url}/account/security"
    started = post_form(browser, browser.session.get(url), "/account/security",
                        action="start")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text).group(1)
    totp = pyotp.TOTP(secret)
    step = totp.timecode(time.time())
    post_form(browser, started, "/account/security", action="confirm",
              code=totp.generate_otp(step))
    client = provider.create_client()
    for session in (older, browser):
        assert "/login" in session.go(session.authorize_url(client)).url
    fresh = Browser(provider.url)
    page = fresh.go(fresh.authorize_url(client, acr_values="L3"), username=username,
                    password=password)
    assert "/login/otp" in page.url
    done = post_form(fresh, page, "/login/otp", action="totp",
                     code=totp.generate_otp(step + 1))
    callback = follow(fresh, done)
    tokens = redeem(provider.url, client, callback_params(callback)["code"]).json()
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["acr"] == "L3" and claims["amr"] == ["pwd", "otp", "mfa"]


@pytest.mark.parametrize("entry", [{"essential": True, "values": "L3"},
                                   {"essential": True, "value": 5},
                                   {"essential": True, "values": []}])
def test_malformed_essential_acr_is_invalid_request(gw, entry):
    """Regression: these were read as no requirement at all."""
    import json

    provider, gateway = gw
    username, password, _ = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    response = browser.go(browser.authorize_url(
        client, claims=json.dumps({"id_token": {"acr": entry}})), username=username,
        password=password)
    assert callback_params(response)["error"] == "invalid_request"


# -- The hold after a password reset by SMS code ------------------------------


def reset_by_phone(browser: Browser, gateway, phone: str, password: str) -> None:
    """A new password with a code sent to ``phone`` (what whoever holds the
    phone can do), then a sign-in with it by the phone number."""
    page = browser.session.get(f"{browser.base}/password/reset")
    sent = post_form(browser, page, "/password/reset", phone=phone, action="send")
    code = read_outbox(gateway.data_path, phone)[-1]["params"]["code"]
    reset = post_form(browser, sent, "/password/reset", phone=phone, code=code,
                      password=password, confirm=password, action="verify")
    assert reset.status_code == 303, reset.text[:500]
    assert browser.go(f"{browser.base}/account", username=phone,
                      password=password).status_code == 200


def hold_ends(provider, username: str) -> str:
    """When the hold after the SMS reset of ``username`` ends, as the pages
    say it (the province's time, Asia/Shanghai, UTC+8)."""
    from datetime import timedelta

    from idp.accounts.service import find_by_username

    hold = provider.runtime.settings["session"]["reauth_hold_after_sms_reset"]
    with provider.app.app_context():
        reset_at = find_by_username(username).password_reset_by_sms_at
    return f"{reset_at + timedelta(seconds=hold, hours=8):%Y-%m-%d %H:%M} (China Time)"


def test_a_phone_thief_does_not_reach_level_3_during_the_hold(gw):
    """Regression: on an account without an authenticator app, whoever held
    the phone reset the password with a code from it, signed in with it,
    verified the name and ID number (knowledge), passed the carrier check
    (which proves only the phone) and added an SMS code at the step-up: an
    ID token with ``acr`` L3 and ``amr`` pwd sms mfa, all from the phone.
    During ``session.reauth_hold_after_sms_reset`` the password and an SMS
    code prove only the phone (docs/recovery.md): the carrier check is
    refused, saying until when and what else works, and no SMS code counts
    as a second factor, so the request ends unmet."""
    from html import unescape

    from idp.accounts.service import find_by_username
    from idp.accounts.verification import assurance_level

    provider, gateway = gw
    username, _password, person = level_2_account(provider, gateway)
    client = provider.create_client()
    thief = Browser(provider.url)
    reset_by_phone(thief, gateway, person.phone, "plum-blossom-river-delta")
    identity = thief.session.get(f"{provider.url}/account/verify")
    verified = post_form(thief, identity, "/account/verify", name=person.name,
                         id_number=person.id_number)
    assert verified.status_code in (302, 303)
    until = hold_ends(provider, username)
    strong = thief.session.get(f"{provider.url}/account/verify/strong")
    assert 'value="carrier"' not in strong.text and 'id="carrier-refused"' in strong.text
    refused = post_form(thief, strong, "/account/verify/strong", method="carrier")
    assert refused.status_code == 422
    assert ("Your password was reset by a text message, and the mobile carrier check proves "
            f"only that you hold that phone: it is possible again from {until}. Until then, "
            "use the face comparison, or bring your ID card to a service counter."
            ) in unescape(refused.text)
    thief.session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    chinese = thief.session.get(f"{provider.url}/account/verify/strong")
    assert "而手机运营商核验只能证明您持有该手机" in chinese.text
    del thief.session.headers["Accept-Language"]
    with provider.app.app_context():
        assert assurance_level(find_by_username(username)) == 2
    # The level-3 request: no code to the phone is offered or accepted.
    texts = len(read_outbox(gateway.data_path, person.phone))
    page = thief.go(thief.authorize_url(client, acr_values="L3"))
    assert "/login/step-up" in page.url and 'id="factor-held"' in page.text
    assert 'value="send_sms"' not in page.text
    for action, fields in (("send_sms", {}), ("sms", {"code": "000000"})):
        held = post_form(thief, page, "/login/step-up", action=action, **fields)
        assert held.status_code == 403, action
        assert "neither counts as a second factor" in held.text
    assert len(read_outbox(gateway.data_path, person.phone)) == texts
    cancelled = post_form(thief, page, "/login/step-up", action="cancel")
    assert callback_params(cancelled)["error"] == "unmet_authentication_requirements"


def test_no_second_factor_by_the_phone_during_the_hold(gw):
    """The owner who reset the password by SMS code and proved their face
    (level 3) gets no second factor from the phone until the hold ends:
    neither an SMS code after the password, nor the password after an SMS
    sign-in. The page says until when; a refused attempt is audited. Once
    the hold is over, the SMS code counts again (acr L3)."""
    from datetime import timedelta

    from sqlalchemy import select

    from idp.accounts.service import find_by_username
    from idp.audit.models import AuditEvent
    from idp.extensions import db
    from idp.timeutil import utcnow
    from tests.integration.test_email import _reset_by_sms_at

    provider, gateway = gw
    username, _password, person = level_2_account(provider, gateway)
    client = provider.create_client()
    owner = Browser(provider.url)
    chosen = "quiet-lantern-harbour-moss"
    reset_by_phone(owner, gateway, person.phone, chosen)
    identity = owner.session.get(f"{provider.url}/account/verify")
    post_form(owner, identity, "/account/verify", name=person.name, id_number=person.id_number)
    strong = owner.session.get(f"{provider.url}/account/verify/strong")
    face = post_form(owner, strong, "/account/verify/strong", method="face",
                     liveness_token="pass-hold")
    assert face.status_code in (302, 303)
    until = hold_ends(provider, username)
    page = owner.go(owner.authorize_url(client, acr_values="L3"))
    assert "/login/step-up" in page.url
    assert 'value="send_sms"' not in page.text and 'value="password"' not in page.text
    assert ("Your password was reset by a text message, so your password and a code to that "
            f"same phone prove only the phone: until {until} neither counts as a second "
            "factor.") in page.text
    sent = post_form(owner, page, "/login/step-up", action="send_sms")
    assert sent.status_code == 403
    with provider.app.app_context():
        refusal = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "login.failure",
            AuditEvent.account_id == find_by_username(username).id,
        ).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())).first()
        assert refusal.detail["reason"] == "reset_hold" and refusal.detail["method"] == "sms"
    # An SMS sign-in may not add the password either.
    by_sms = Browser(provider.url)
    login = by_sms.session.get(f"{provider.url}/login/sms")
    asked = post_form(by_sms, login, "/login/sms", phone=person.phone, action="send")
    code = read_outbox(gateway.data_path, person.phone)[-1]["params"]["code"]
    post_form(by_sms, asked, "/login/sms", phone=person.phone, code=code, action="verify")
    page = by_sms.go(by_sms.authorize_url(client, acr_values="L3"))
    assert "/login/step-up" in page.url and 'value="password"' not in page.text
    assert post_form(by_sms, page, "/login/step-up", action="password",
                     password=chosen).status_code == 403
    # After the hold, the code to the phone is a second factor again.
    hold = provider.runtime.settings["session"]["reauth_hold_after_sms_reset"]
    _reset_by_sms_at(provider, username, utcnow() - timedelta(seconds=hold + 1))
    page = owner.go(owner.authorize_url(client, acr_values="L3"))
    assert 'id="factor-held"' not in page.text
    sent = post_form(owner, page, "/login/step-up", action="send_sms")
    assert sent.status_code == 200
    code = read_outbox(gateway.data_path, person.phone)[-1]["params"]["code"]
    stepped = post_form(owner, sent, "/login/step-up", action="sms", code=code)
    callback = follow(owner, stepped)
    tokens = redeem(provider.url, client, callback_params(callback)["code"]).json()
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["acr"] == "L3" and claims["amr"] == ["pwd", "sms", "mfa"]
