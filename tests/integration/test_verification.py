"""Identity verification in the account console against the sandbox
registries over real HTTP: levels, evidence, failures, outages, limits."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import Browser, hidden_inputs
from tests.reauth_support import reauth_with_app, reauth_with_sms
from tests.sandbox_support import fresh_person, start_gateway_provider


@pytest.fixture(scope="module")
def gw(tmp_path_factory, database_url):
    provider, gateway = start_gateway_provider(
        tmp_path_factory, database_url, gateway={"retries": 0, "breaker_threshold": 1000},
        assurance={"checks_per_account_daily": 6, "checks_per_ip_hourly": 1000})
    yield provider, gateway
    provider.stop()
    gateway.stop()


def signed_in(provider, **account) -> tuple[Browser, str, str]:
    """A browser signed in to a new account: ``(browser, username, password)``."""
    username, password, _sub = provider.create_account(**account)
    browser = Browser(provider.url)
    page = browser.go(f"{provider.url}/account", username=username, password=password)
    assert page.status_code == 200 and "/account/verify" in page.text, page.text[:300]
    return browser, username, password


def submit(browser: Browser, path: str, allow_redirects: bool = False, **fields):
    page = browser.session.get(browser.base + path)
    data = hidden_inputs(page.text)
    data.update(fields)
    return browser.session.post(browser.base + path, data=data,
                                allow_redirects=allow_redirects)


def level(provider, username) -> int:
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import assurance_level

    with provider.app.app_context():
        return assurance_level(find_by_username(username))


def test_console_needs_a_login(gw):
    provider, _ = gw
    response = requests.get(f"{provider.url}/account/verify", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/account/verify")


def test_login_next_is_limited_to_the_console(gw):
    provider, _ = gw
    username, password, _ = provider.create_account()
    for target in ("https://evil.example.test/", "//evil.example.test/", "/account/../x",
                   "/authorize", "/account\\..\\x"):
        session = requests.Session()
        fields = hidden_inputs(session.get(f"{provider.url}/login",
                                           params={"next": target}).text)
        fields.update(username=username, password=password)
        done = session.post(f"{provider.url}/login", data=fields, allow_redirects=False)
        assert done.headers["Location"] in ("/", "/account/../x"), target


def test_verify_to_level_2_then_log_in_with_the_id_number(gw):
    provider, _ = gw
    person = fresh_person(gw[1])
    browser, username, password = signed_in(provider)
    assert level(provider, username) == 0
    done = submit(browser, "/account/verify", name=person.name,
                  id_number=person.id_number.lower())
    assert done.status_code == 303 and done.headers["Location"] == "/account"
    overview = browser.session.get(f"{provider.url}/account").text
    assert 'data-level="2"' in overview and "L2" in overview
    assert person.id_number not in overview  # masked
    assert person.id_number[:4] + "**********" + person.id_number[-4:] in overview
    assert 'data-method="population_registry" data-live="yes"' in overview
    assert level(provider, username) == 2
    # The verified number now names the account at the password login.
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username=person.id_number, password=password)
    assert session.post(f"{provider.url}/login", data=fields,
                        allow_redirects=False).status_code == 303


def test_mismatch_is_recorded_and_explained_with_input_kept(gw):
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import evidence_of

    provider, _ = gw
    person = fresh_person(gw[1])
    browser, username, _ = signed_in(provider)
    refused = submit(browser, "/account/verify", name="某某某", id_number=person.id_number)
    assert refused.status_code == 422 and "do not match" in refused.text
    assert "某某某" in refused.text and person.id_number in refused.text
    with provider.app.app_context():
        account = find_by_username(username)
        [item] = evidence_of(account)
        assert (item.method, item.result, item.level) == ("population_registry", "mismatch", 0)
        assert item.reference.startswith("SBX-") and account.resident_id_enc is None
    invalid = submit(browser, "/account/verify", name=person.name,
                     id_number=person.id_number[:-1] + ("0" if person.id_number[-1] != "0"
                                                        else "1"))
    assert invalid.status_code == 400 and "check character" in invalid.text


def test_outage_keeps_input_and_level(gw):
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import evidence_of

    provider, gateway = gw
    person = fresh_person(gateway)
    browser, username, _ = signed_in(provider)
    gateway.state.inject_failures("/population/v1/verify", 1)
    down = submit(browser, "/account/verify", name=person.name, id_number=person.id_number)
    assert down.status_code == 503 and "unavailable" in down.text
    assert person.name in down.text and person.id_number in down.text
    with provider.app.app_context():
        assert evidence_of(find_by_username(username)) == []
    assert level(provider, username) == 0


def test_one_account_per_verified_person(gw):
    provider, gateway = gw
    person = fresh_person(gateway)
    first, _, _ = signed_in(provider)
    assert submit(first, "/account/verify", name=person.name,
                  id_number=person.id_number).status_code == 303
    second, second_name, _ = signed_in(provider)
    # The number stays with the first account; the second may prove
    # possession of it (tests/integration/test_squatting.py).
    taken = submit(second, "/account/verify", name=person.name, id_number=person.id_number)
    assert taken.status_code == 303
    assert taken.headers["Location"] == "/account/verify/strong"
    assert level(provider, second_name) == 0
    # The first account cannot switch to another person either.
    other = fresh_person(gateway)
    switch = submit(first, "/account/verify", name=other.name, id_number=other.id_number)
    assert switch.status_code == 400 and "another ID number" in switch.text


def test_strong_proofs(gw):
    provider, gateway = gw
    person = fresh_person(gateway)
    browser, username, password = signed_in(provider)
    early = browser.session.get(f"{provider.url}/account/verify/strong")
    assert "First verify" in early.text and 'value="card"' not in early.text
    submit(browser, "/account/verify", name=person.name, id_number=person.id_number)
    wrong = submit(browser, "/account/verify/strong", card_number="Z99999999", method="card")
    assert wrong.status_code == 422 and "No card" in wrong.text
    face_fail = submit(browser, "/account/verify/strong", liveness_token="fail-1",
                       method="face")
    assert face_fail.status_code == 422 and "did not match" in face_fail.text
    assert level(provider, username) == 2
    done = submit(browser, "/account/verify/strong", card_number=person.card_number.lower(),
                  method="card")
    assert done.status_code == 303
    # Issue 7: the number printed on a card is knowledge (whoever holds a
    # stolen card can type it): the card registers, the level stays 2.
    assert level(provider, username) == 2
    face = submit(browser, "/account/verify/strong", liveness_token="pass-2", method="face")
    assert face.status_code == 303
    assert level(provider, username) == 3
    # The card number is a login identifier now.
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username=person.card_number, password=password)
    assert session.post(f"{provider.url}/login", data=fields,
                        allow_redirects=False).status_code == 303


def test_lost_card_and_face_pass(gw):
    provider, gateway = gw
    person = fresh_person(gateway, card_status="lost")
    browser, username, _ = signed_in(provider)
    submit(browser, "/account/verify", name=person.name, id_number=person.id_number)
    lost = submit(browser, "/account/verify/strong", card_number=person.card_number,
                  method="card")
    assert lost.status_code == 422 and "lost" in lost.text
    retry = submit(browser, "/account/verify/strong", liveness_token="blurry", method="face")
    assert retry.status_code == 422 and "not conclusive" in retry.text
    assert submit(browser, "/account/verify/strong", liveness_token="pass-abc",
                  method="face").status_code == 303
    assert level(provider, username) == 3


def test_carrier_check_needs_the_persons_confirmed_phone(gw):
    from connectors.sandbox import read_outbox

    provider, gateway = gw
    person = fresh_person(gateway)
    browser, username, password = signed_in(provider)
    submit(browser, "/account/verify", name=person.name, id_number=person.id_number)
    missing = submit(browser, "/account/verify/strong", method="carrier")
    assert missing.status_code == 422 and "mobile number" in missing.text
    page = submit(browser, "/account/phone", allow_redirects=True, phone=person.phone,
                  action="send")
    code = read_outbox(gateway.data_path, person.phone)[-1]["params"]["code"]
    data = hidden_inputs(page.text)
    data.update(phone=person.phone, code=code, action="verify", password="wrong password")
    # The password is needed too: a session alone must not set the number
    # that password resets go to.
    refused = browser.session.post(f"{provider.url}/account/phone", data=data,
                                   allow_redirects=False)
    assert refused.status_code == 401 and "password is incorrect" in refused.text
    data.update(password=password)
    confirmed = browser.session.post(f"{provider.url}/account/phone", data=data,
                                     allow_redirects=False)
    assert confirmed.status_code == 303
    assert submit(browser, "/account/verify/strong", method="carrier").status_code == 303
    assert level(provider, username) == 3


def test_checks_are_limited_per_account(gw):
    provider, gateway = gw
    person = fresh_person(gateway)
    browser, _, _ = signed_in(provider)
    statuses = [submit(browser, "/account/verify", name="某" * (n + 1),
                       id_number=person.id_number).status_code for n in range(7)]
    assert statuses == [422] * 6 + [429]


def test_console_and_errors_in_chinese(gw):
    provider, gateway = gw
    person = fresh_person(gateway)
    browser, _, _ = signed_in(provider)
    browser.session.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    page = browser.session.get(f"{provider.url}/account")
    assert "身份可信等级" in page.text and "核验记录" in page.text
    refused = submit(browser, "/account/verify", name="某某某", id_number=person.id_number)
    assert "姓名与身份证号在人口库中不一致" in refused.text


def test_ownership_answers_count_against_the_limit(gw):
    """Regression: 'already verified for another account' was answered
    before the check was counted, so it told for free which ID numbers have
    accounts. (Now the claim on a number held by name and number only is
    that answer.)"""
    provider, gateway = gw
    person = fresh_person(gateway)
    holder, _, _ = signed_in(provider)
    assert submit(holder, "/account/verify", name=person.name,
                  id_number=person.id_number).status_code == 303
    prober, _, _ = signed_in(provider)
    statuses = [submit(prober, "/account/verify", name=person.name,
                       id_number=person.id_number).status_code for _ in range(7)]
    assert statuses == [303] * 6 + [429]


def _confirm_phone(browser, provider, gateway, phone, password, **extra):
    from connectors.sandbox import read_outbox

    page = submit(browser, "/account/phone", allow_redirects=True, phone=phone, action="send")
    code = read_outbox(gateway.data_path, phone)[-1]["params"]["code"]
    data = hidden_inputs(page.text)
    data.update(phone=phone, code=code, action="verify", password=password, **extra)
    return browser.session.post(f"{provider.url}/account/phone", data=data,
                                allow_redirects=False)


def test_replacing_the_phone_ends_sessions_and_drops_the_level(gw):
    """Regression: a signed-in session could replace the confirmed number
    without the password (a kiosk card read could then reset the password
    by SMS), and a replaced number kept the level it had: an attacker who
    knew only the password could then add an SMS factor of their own."""
    from connectors.sandbox import read_outbox
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import evidence_of

    provider, gateway = gw
    person = fresh_person(gateway)
    browser, username, password = signed_in(provider)
    assert _confirm_phone(browser, provider, gateway, person.phone,
                          password).status_code == 303
    submit(browser, "/account/verify", name=person.name, id_number=person.id_number)
    submit(browser, "/account/verify/strong", method="carrier")
    submit(browser, "/account/verify/strong", card_number=person.card_number, method="card")
    assert level(provider, username) == 3
    other = fresh_person(gateway).phone
    # Replacing the number needs the password and a code to the current one.
    assert submit(browser, "/account/phone").headers["Location"] == \
        "/account/reauth?next=/account/phone"
    assert reauth_with_sms(browser.session, provider.url, gateway, person.phone, password,
                           next_path="/account/phone").status_code == 303
    changed = _confirm_phone(browser, provider, gateway, other, password)
    assert changed.status_code == 303 and "/login" in changed.headers["Location"]
    assert level(provider, username) == 1
    with provider.app.app_context():
        reasons = {e.revoked_reason for e in evidence_of(find_by_username(username)) if e.level}
    assert reasons == {"phone_changed"}
    # The session ended; the old number was told.
    assert browser.session.get(f"{provider.url}/account",
                               allow_redirects=False).status_code == 302
    assert read_outbox(gateway.data_path, person.phone)[-1]["template"] == "phone_changed"


def test_replacing_the_phone_with_totp_keeps_the_level_but_not_the_carrier_check(gw):
    import re
    import time

    import pyotp

    provider, gateway = gw
    person = fresh_person(gateway)
    browser, username, password = signed_in(provider)
    _confirm_phone(browser, provider, gateway, person.phone, password)
    submit(browser, "/account/verify", name=person.name, id_number=person.id_number)
    submit(browser, "/account/verify/strong", method="carrier")
    assert reauth_with_sms(browser.session, provider.url, gateway, person.phone,
                           password).status_code == 303
    started = submit(browser, "/account/security", allow_redirects=True, action="start")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text).group(1)
    totp = pyotp.TOTP(secret)
    step = totp.timecode(time.time())
    data = hidden_inputs(started.text)
    data.update(action="confirm", code=totp.generate_otp(step))
    recovery = re.findall(r"<code>([a-z0-9-]{11})</code>", browser.session.post(
        f"{provider.url}/account/security", data=data).text)
    # Enrolment ended the session: sign in again (a recovery code leaves the
    # next time step for the phone change).
    page = browser.go(f"{provider.url}/account", username=username, password=password)
    data = hidden_inputs(page.text)
    data.update(action="recovery", recovery_code=recovery[0])
    assert browser.session.post(f"{provider.url}/login/otp", data=data).status_code == 200
    assert level(provider, username) == 3
    # Replacing the number needs a re-authentication (a recovery code here).
    assert reauth_with_app(browser.session, provider.url, password,
                           recovery_code=recovery[1], next_path="/account/phone"
                           ).status_code == 303
    other = fresh_person(gateway).phone
    changed = _confirm_phone(browser, provider, gateway, other, password,
                             totp=totp.generate_otp(step + 1))
    assert changed.status_code == 303
    # The carrier check was about the old number: level 2 remains.
    assert level(provider, username) == 2
