"""Password reset by SMS (the level drops to 1; an authenticator app stays
and is made known), and the operator's commands: suspend, reinstate, demand
re-verification, verify in person, show, reset the second factor."""

from __future__ import annotations

import json

import requests
from click.testing import CliRunner

from connectors.sandbox import read_outbox
from idp.cli import main
from tests.helpers import Browser, callback_params, hidden_inputs, redeem
from tests.integration.test_step_up import level_2_account
from tests.sandbox_support import KEY, SECRET, fresh_person


def cli(provider, gateway, *args):
    """Run ``idp`` on the provider's own database and store, as an operator would."""
    env = {**provider.cli_env(), "IDP_GATEWAY__URL": gateway.url,
           "IDP_GATEWAY__ACCESS_KEY": KEY, "IDP_GATEWAY__SECRET": SECRET}
    args = list(args)
    if args[1] in ("suspend", "reinstate", "reverify", "verify-in-person",
                   "reset-second-factor") and "--reason" in args:
        args += ["--operator", "clerk-7"]
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def tokens_of(provider, username, password):
    client = provider.create_client()
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password,
                                  scope="openid offline_access")["code"]
    return client, browser, redeem(provider.url, client, code).json()


def refresh(provider, client, tokens):
    return requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})


def userinfo_status(provider, tokens) -> int:
    return requests.get(f"{provider.url}/userinfo", headers={
        "Authorization": f"Bearer {tokens['access_token']}"}).status_code


def _login_status(provider, identifier, password) -> int:
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username=identifier, password=password)
    return session.post(f"{provider.url}/login", data=fields,
                        allow_redirects=False).status_code


def _reset(provider, gateway, phone, password):
    """Ask for a code, then set ``password`` with it: ``(session, answer, code)``."""
    session = requests.Session()
    page = session.get(f"{provider.url}/password/reset")
    fields = hidden_inputs(page.text)
    fields.update(phone=phone, action="send")
    sent = session.post(f"{provider.url}/password/reset", data=fields)
    assert sent.status_code == 200
    code = read_outbox(gateway.data_path, phone)[-1]["params"]["code"]
    return session, _set_password(provider, session, sent, phone, code, password), code


def _set_password(provider, session, page, phone, code, password):
    fields = hidden_inputs(page.text)
    fields.update(phone=phone, code=code, password=password, confirm=password,
                  action="verify")
    return session.post(f"{provider.url}/password/reset", data=fields, allow_redirects=False)


def test_password_reset_by_sms_drops_the_level_and_ends_everything(gw):
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import assurance_level, evidence_of

    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    client, browser, tokens = tokens_of(provider, username, password)
    session, weak, code = _reset(provider, gateway, person.phone, "short")
    assert weak.status_code == 400 and "at least" in weak.text
    # The code was not used up by the rejected password.
    reset = _set_password(provider, session, weak, person.phone, code, "a new long password")
    assert reset.status_code == 303 and "/login" in reset.headers["Location"]
    with provider.app.app_context():
        account = find_by_username(username)
        assert assurance_level(account) == 1
        reasons = {e.revoked_reason for e in evidence_of(account) if e.level}
        assert reasons == {"password_reset_by_sms"}
    assert _login_status(provider, username, password) == 401
    assert _login_status(provider, username, "a new long password") == 303
    # The old SSO session, refresh token and access token are all dead.
    assert "/login" in browser.go(browser.authorize_url(client)).url
    assert refresh(provider, client, tokens).json()["error"] == "invalid_grant"
    assert userinfo_status(provider, tokens) == 401


def test_reset_answers_the_same_for_unknown_numbers(gw):
    provider, gateway = gw
    person = fresh_person(gateway)
    _session, refused, _code = _reset(provider, gateway, person.phone, "a new long password")
    assert refused.status_code == 401 and "wrong or has expired" in refused.text


def test_suspend_and_reinstate(gw):
    provider, gateway = gw
    username, password, _ = provider.create_account()
    client, _browser, tokens = tokens_of(provider, username, password)
    result = cli(provider, gateway, "users", "suspend", username, "--reason", "fraud report")
    assert result.exit_code == 0 and "1 grants revoked" in result.output, result.output
    assert userinfo_status(provider, tokens) == 401
    assert refresh(provider, client, tokens).json()["error"] == "invalid_grant"
    assert _login_status(provider, username, password) == 401
    assert cli(provider, gateway, "users", "reinstate", username).exit_code == 0
    assert _login_status(provider, username, password) == 303


def test_forced_reverification_stops_tokens_until_verified_again(gw):
    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    client, browser, tokens = tokens_of(provider, username, password)
    result = cli(provider, gateway, "users", "reverify", person.id_number,
                 "--reason", "documents reported stolen")
    assert result.exit_code == 0, result.output
    assert refresh(provider, client, tokens).json()["error"] == "invalid_grant"
    assert userinfo_status(provider, tokens) == 401
    # Sign-in still works, but the client gets nothing before verification.
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client), username=username, password=password)
    assert "/login/step-up" in page.url and "/account/verify?i=" in page.text
    verify = browser.session.get(provider.url + page.text.split('id="verify" href="')[1]
                                 .split('"')[0].replace("&amp;", "&"))
    fields = hidden_inputs(verify.text)
    fields.update(name=person.name, id_number=person.id_number)
    done = browser.session.post(f"{provider.url}/account/verify", data=fields,
                                allow_redirects=False)
    assert "/authorize/resume" in done.headers["Location"]
    callback = browser.go(provider.url + done.headers["Location"])
    assert callback.headers["Location"].startswith(client.redirect_uri + "?code=")


def test_in_person_verification_and_show(gw):
    provider, gateway = gw
    username, _, _ = provider.create_account()
    person = fresh_person(gateway)
    wrong = cli(provider, gateway, "users", "verify-in-person", username, "--name", "某人",
                "--id-number", person.id_number, "--reference", "CTR-1")
    assert wrong.exit_code != 0 and "not verified" in wrong.output
    bad = cli(provider, gateway, "users", "verify-in-person", username, "--name", person.name,
              "--id-number", "12345", "--reference", "CTR-1")
    assert bad.exit_code != 0 and "--id-number" in bad.output
    done = cli(provider, gateway, "users", "verify-in-person", username, "--name", person.name,
               "--id-number", person.id_number, "--reference", "CTR-2")
    assert done.exit_code == 0, done.output
    shown = json.loads(cli(provider, gateway, "users", "show", username, "--json").output)
    assert shown["level"] == 4 and shown["assurance_level"] == "L4"
    assert person.id_number not in json.dumps(shown)
    assert shown["resident_id"] == person.id_number[:4] + "*" * 10 + person.id_number[-4:]
    in_person = [e for e in shown["evidence"] if e["method"] == "in_person"]
    assert in_person[0]["reference"] == "CTR-2" and in_person[0]["counts"]
    missing = cli(provider, gateway, "users", "show", "nobody-here")
    assert missing.exit_code != 0 and "no account" in missing.output


def test_verify_in_person_without_a_gateway_says_so(gw, tmp_path):
    provider, gateway = gw
    username, _, _ = provider.create_account()
    env = provider.cli_env()
    result = CliRunner().invoke(main, ["users", "verify-in-person", username, "--name", "x",
                                       "--id-number", "x", "--reference", "r"], env=env)
    assert result.exit_code == 1 and "no gateway is configured" in result.output


def test_in_person_take_over_of_an_identity_squatted_online(gw):
    """Someone who knew a person's name and ID number verified them online
    first; the counter gives the number to its owner's account."""
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import assurance_level, verify_population

    provider, gateway = gw
    person = fresh_person(gateway)
    squatter, _, _ = provider.create_account()
    owner, _, _ = provider.create_account()
    with provider.app.app_context():
        verify_population(provider.runtime, find_by_username(squatter), person.name,
                          person.id_number, None)
    args = ["users", "verify-in-person", owner, "--name", person.name, "--id-number",
            person.id_number, "--reference", "CTR-9"]
    refused = cli(provider, gateway, *args)
    assert refused.exit_code != 0 and "another account" in refused.output
    # A registry mismatch releases nothing.
    wrong = cli(provider, gateway, "users", "verify-in-person", owner, "--name", "某某",
                "--id-number", person.id_number, "--reference", "CTR-9", "--take-over")
    assert wrong.exit_code != 0
    with provider.app.app_context():
        assert find_by_username(squatter).resident_id_enc is not None
    taken = cli(provider, gateway, *args, "--take-over")
    assert taken.exit_code == 0, taken.output
    with provider.app.app_context():
        old, new = find_by_username(squatter), find_by_username(owner)
        assert old.resident_id_enc is None and old.reverification_required
        assert assurance_level(old) <= 1 and assurance_level(new) == 4


def _with_authenticator(provider, username) -> tuple[str, list[str]]:
    """Bind an authenticator app to ``username`` (as the console does after a
    re-authentication): ``(secret, recovery codes)``."""
    import pyotp

    from idp.accounts.service import find_by_username
    from idp.authn import totp

    with provider.app.app_context():
        account = find_by_username(username)
        secret = totp.start_enrolment(provider.runtime, account).secret
        codes = totp.confirm_enrolment(provider.runtime, account, pyotp.TOTP(secret).now(),
                                       None)
    return secret, codes


def _second_step(provider, identifier, password) -> str:
    """Where a password sign-in goes next: the second step or the account."""
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username=identifier, password=password)
    answer = session.post(f"{provider.url}/login", data=fields, allow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]
    return answer.headers["Location"]


def test_sms_reset_keeps_the_authenticator_and_says_so(gw):
    """NIST SP 800-63B §6.1.2.3: a phone alone neither strips the owner's
    authenticator nor leaves a foreign one unnoticed. The page and the text
    message name the day it was added and the way to have it removed."""
    import time

    from idp.accounts.service import find_by_username
    from idp.authn import totp

    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    _secret, codes = _with_authenticator(provider, username)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    session, reset, _code = _reset(provider, gateway, person.phone, "a new long password")
    assert reset.status_code == 303
    page = session.get(provider.url + reset.headers["Location"])
    assert (f"An authenticator app added on {today} is still needed to sign in. If it is "
            "not yours, visit a service counter with your ID card to have it removed."
            in page.text)
    notice = read_outbox(gateway.data_path, person.phone)[-1]
    assert notice["template"] == "password_reset_authenticator_kept"
    assert notice["params"] == {"date": today}
    with provider.app.app_context():
        account = find_by_username(username)
        assert totp.has_totp(account) and totp.remaining_recovery_codes(account) == 10
    # The new password alone does not get in: the app (or a recovery code) is asked.
    assert "/login/otp" in _second_step(provider, username, "a new long password")


def test_sms_reset_without_an_authenticator_does_not_reauthenticate_at_once(gw):
    """After a reset by SMS the password and a code to that phone prove
    only the phone: for session.reauth_hold_after_sms_reset they cannot
    bind an authenticator (a phone thief would make their hold permanent)."""
    provider, gateway = gw
    username, _password, person = level_2_account(provider, gateway)
    _reset(provider, gateway, person.phone, "a new long password")
    browser = Browser(provider.url)
    browser.go(f"{provider.url}/account", username=username, password="a new long password")
    page = browser.session.get(f"{provider.url}/account/reauth")
    assert 'data-reauth="refused"' in page.text
    assert "Your password was reset by a text message" in page.text
    fields = hidden_inputs(browser.session.get(f"{provider.url}/login").text)
    sent = browser.session.post(f"{provider.url}/account/reauth",
                                data={**fields, "action": "send"}, allow_redirects=False)
    assert sent.status_code == 403
    assert read_outbox(gateway.data_path, person.phone)[-1]["template"] == "otp_reset_password"


def test_operator_resets_the_second_factor(gw):
    """A thief's authenticator on the owner's account (or a lost device and
    lost recovery codes): an operator checks the person at a counter and
    removes it; audited, every session and grant ends, the phone is told."""
    from idp.accounts.service import find_by_username
    from idp.audit.models import AuditEvent
    from idp.authn import totp
    from idp.extensions import db
    from tests.reauth_support import reauth_with_sms

    provider, gateway = gw
    username, password, person = level_2_account(provider, gateway)
    _with_authenticator(provider, username)
    # The owner reset the password by SMS: the app still blocks them.
    _reset(provider, gateway, person.phone, "a new long password")
    password = "a new long password"
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, scope="openid offline_access"),
                      username=username, password=password)
    assert "/login/otp" in page.url
    with provider.app.app_context():
        account = find_by_username(username)
        secret = totp.credential(account).secret_enc
    missing = cli(provider, gateway, "users", "reset-second-factor", username)
    assert missing.exit_code == 2 and "Missing option '--reason'" in missing.output
    unknown = cli(provider, gateway, "users", "reset-second-factor", "nobody-here",
                  "--reason", "x")
    assert unknown.exit_code == 1 and "no account is named 'nobody-here'" in unknown.output
    empty = cli(provider, gateway, "users", "reset-second-factor", username, "--reason", " ")
    assert empty.exit_code == 1 and "--reason must say why" in empty.output
    with provider.app.app_context():
        assert totp.credential(find_by_username(username)).secret_enc == secret
    done = cli(provider, gateway, "users", "reset-second-factor", person.phone,
               "--reason", "ID card seen at counter 3; authenticator not theirs")
    assert done.exit_code == 0, done.output
    assert done.output == (f"removed the authenticator app and recovery codes of {username}; "
                           "every session ended; 0 grants revoked\n")
    with provider.app.app_context():
        account = find_by_username(username)
        assert totp.credential(account) is None
        assert totp.remaining_recovery_codes(account) == 0
        event = db.session.query(AuditEvent).filter_by(
            account_id=account.id, event="totp.reset").one()
        assert event.detail == {"actor": "clerk-7", "removed": True,
                                "reason": "ID card seen at counter 3; authenticator not theirs"}
    assert read_outbox(gateway.data_path, person.phone)[-1]["template"] == \
        "authenticator_reset"
    again = cli(provider, gateway, "users", "reset-second-factor", username, "--reason", "x")
    assert again.exit_code == 1
    assert f"{username} has no authenticator app or recovery codes" in again.output
    # The owner signs in with the password alone, and -- the counter having
    # checked them -- binds a new authenticator with the password and the phone.
    assert "/login/otp" not in _second_step(provider, username, password)
    browser = Browser(provider.url)
    browser.go(f"{provider.url}/account", username=username, password=password)
    assert reauth_with_sms(browser.session, provider.url, gateway, person.phone,
                           password).status_code == 303


def test_operator_reset_revokes_grants_and_operators_set_up_a_new_one(gw):
    """Tokens issued on the strength of the removed authenticator stop; an
    operator's account is never left without one: the next password
    sign-in sets up a new one."""
    import time
    import uuid

    import pyotp

    from idp.accounts.service import create_account

    provider, gateway = gw
    with provider.app.app_context():
        username = create_account(provider.runtime, f"op{uuid.uuid4().hex[:10]}",
                                  "operator password", admin=True).username
    secret, _codes = _with_authenticator(provider, username)
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, scope="openid offline_access"),
                      username=username, password="operator password")
    fields = hidden_inputs(page.text)
    # The enrolment used the current time step: the login takes the next one.
    fields.update(action="totp", code=pyotp.TOTP(secret).at(time.time(), counter_offset=1))
    done = browser.session.post(f"{provider.url}/login/otp", data=fields, allow_redirects=False)
    assert done.status_code == 303, done.text[:300]
    code = callback_params(browser.go(provider.url + done.headers["Location"]))["code"]
    tokens = redeem(provider.url, client, code).json()
    result = cli(provider, gateway, "users", "reset-second-factor", username,
                 "--reason", "lost phone and recovery codes")
    assert result.exit_code == 0 and "1 grants revoked" in result.output, result.output
    assert refresh(provider, client, tokens).json()["error"] == "invalid_grant"
    assert userinfo_status(provider, tokens) == 401
    assert browser.session.get(f"{provider.url}/account",
                               allow_redirects=False).status_code == 302
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username=username, password="operator password")
    first = session.post(f"{provider.url}/login", data=fields, allow_redirects=False)
    assert "/login/otp" in first.headers["Location"]
    page = session.get(provider.url + first.headers["Location"])
    assert page.status_code == 200 and "<svg" in page.text
