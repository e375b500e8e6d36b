"""Login and registration pages: CSRF, throttling without enumeration
(progressive delays; browsers that signed in before count apart),
re-hash on parameter change, audit events."""

from __future__ import annotations

import time
import uuid

import requests
from sqlalchemy import select

from tests.helpers import Browser, hidden_inputs


def _login_page(provider, session: requests.Session) -> dict:
    page = session.get(f"{provider.url}/login")
    assert page.status_code == 200
    return hidden_inputs(page.text)


def _post_login(provider, session, username, password) -> requests.Response:
    fields = _login_page(provider, session)
    fields.update(username=username, password=password)
    return session.post(f"{provider.url}/login", data=fields, allow_redirects=False)


def test_login_without_csrf_token_is_refused(provider):
    username, password, _ = provider.create_account()
    response = requests.post(f"{provider.url}/login",
                             data={"username": username, "password": password})
    assert response.status_code == 400
    assert "idp_sso" not in response.cookies


def test_wrong_password_and_unknown_user_get_the_same_answer(provider):
    username, _password, _ = provider.create_account()
    wrong = _post_login(provider, requests.Session(), username, "wrong password!")
    unknown = _post_login(provider, requests.Session(), "nobody" + uuid.uuid4().hex[:6],
                          "wrong password!")
    assert wrong.status_code == unknown.status_code == 401
    assert "The username or password is incorrect." in wrong.text
    assert wrong.text.count("incorrect") == unknown.text.count("incorrect")


def test_account_throttling(make_provider):
    provider = make_provider(throttle={"account_failures": 3, "ip_failures": 100})
    username, password, _ = provider.create_account()
    session = requests.Session()
    for _ in range(3):
        assert _post_login(provider, session, username, "bad password").status_code == 401
    blocked = _post_login(provider, session, username, password)
    assert blocked.status_code == 429
    # The wait is said in seconds under a minute (first_delay is 10 s).
    assert blocked.headers["Retry-After"] == "10"
    assert "Too many failed attempts. Try again in 10 seconds." in blocked.text
    chinese = session.post(f"{provider.url}/login", allow_redirects=False, headers={
        "Accept-Language": "zh-CN"}, data={**_login_page(provider, session),
                                           "username": username, "password": password})
    assert chinese.status_code == 429 and "失败次数过多，请 10 秒后再试。" in chinese.text
    # An unknown account is throttled the same way (no enumeration).
    ghost = "ghost" + uuid.uuid4().hex[:6]
    for _ in range(3):
        _post_login(provider, session, ghost, "bad password")
    refused = _post_login(provider, session, ghost, "bad password")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "10"
    # Other accounts from the same IP still work below the IP limit.
    other, other_password, _ = provider.create_account()
    assert _post_login(provider, session, other, other_password).status_code == 303


def test_reformatted_identifiers_share_one_account_limit(make_provider):
    """Regression: the limit counted the identifier as typed, so spelling a
    phone number five ways (or switching between username and phone) gave
    five times the guesses. It counts the account named."""
    from idp.accounts.service import find_by_username, set_phone_number
    from idp.extensions import db

    provider = make_provider(throttle={"account_failures": 4, "ip_failures": 100})
    username, password, _ = provider.create_account()
    with provider.app.app_context():
        set_phone_number(provider.runtime, find_by_username(username), "13900000061", True)
        db.session.commit()
    session = requests.Session()
    for spelling in ("13900000061", "139 0000 0061", "+86 139-0000-0061",
                     username.upper()):
        assert _post_login(provider, session, spelling, "bad password").status_code == 401
    assert _post_login(provider, session, "+8613900000061", password).status_code == 429
    assert _post_login(provider, session, username, password).status_code == 429


def test_ip_throttling(make_provider):
    provider = make_provider(throttle={"account_failures": 100, "ip_failures": 4})
    session = requests.Session()
    for i in range(4):
        _post_login(provider, session, f"user-{i}-{uuid.uuid4().hex[:4]}", "bad password")
    username, password, _ = provider.create_account()
    assert _post_login(provider, session, username, password).status_code == 429


def _set_cookies(response: requests.Response) -> dict[str, str]:
    """The Set-Cookie headers of a response, by cookie name."""
    return {header.split("=", 1)[0]: header
            for header in response.raw.headers.getlist("Set-Cookie")}


def test_successful_login_sets_sso_cookie_and_audits(provider):
    from idp.audit.models import AuditEvent

    username, password, _ = provider.create_account()
    response = _post_login(provider, requests.Session(), username, password)
    assert response.status_code == 303
    cookie = _set_cookies(response)["idp_sso"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # The browser is known to the account from now on (OWASP device cookie).
    device = _set_cookies(response)["idp_device"]
    assert "HttpOnly" in device and "SameSite=Lax" in device and "Max-Age=15552000" in device
    _post_login(provider, requests.Session(), username, "bad password")
    with provider.app.app_context():
        from idp.accounts.service import find_by_username
        from idp.extensions import db

        account = find_by_username(username)
        events = [e.event + ":" + e.outcome for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.account_id == account.id))]
    assert "login.success:success" in events
    assert "login.failure:failure" in events
    assert "account.created:success" in events


def test_password_rehash_when_parameters_change(provider):
    from idp.accounts.passwords import PasswordHasher
    from idp.accounts.service import find_by_username
    from idp.extensions import db

    username, password, _ = provider.create_account()
    weaker = PasswordHasher({"argon2_time_cost": 1, "argon2_memory_cost": 4096,
                             "argon2_parallelism": 1, "max_concurrent_verifications": 1})
    with provider.app.app_context():
        account = find_by_username(username)
        account.password_hash = weaker.hash(password)
        db.session.commit()
    assert _post_login(provider, requests.Session(), username, password).status_code == 303
    with provider.app.app_context():
        stored = find_by_username(username).password_hash
    assert stored.startswith("$argon2id$") and "m=8192" in stored


def test_registration(provider):
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client))
    reg = browser.session.get(f"{provider.url}/register", params={"i": hidden_inputs(
        page.text)["i"]})
    fields = hidden_inputs(reg.text)
    name = "new" + uuid.uuid4().hex[:8]
    fields.update(username=name, password="short", confirm="short", name="New Person")
    bad = browser.session.post(f"{provider.url}/register", data=fields)
    assert bad.status_code == 400 and "at least" in bad.text
    fields.update(password="long enough pass", confirm="long enough pass")
    done = browser.session.post(f"{provider.url}/register", data=fields, allow_redirects=False)
    assert done.status_code == 303 and "idp_device" in _set_cookies(done)
    final = browser.go(provider.url + done.headers["Location"])
    assert final.headers["Location"].startswith(client.redirect_uri)
    taken = requests.Session()
    fields2 = hidden_inputs(taken.get(f"{provider.url}/register").text)
    fields2.update(username=name.upper(), password="long enough pass",
                   confirm="long enough pass")
    again = taken.post(f"{provider.url}/register", data=fields2)
    assert again.status_code == 400 and "already taken" in again.text


def test_security_headers(provider):
    response = requests.get(f"{provider.url}/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_discovery_and_jwks(provider):
    response = requests.get(f"{provider.url}/.well-known/openid-configuration")
    meta = response.json()
    assert meta["issuer"] == provider.url
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    etag = response.headers["ETag"]
    again = requests.get(f"{provider.url}/.well-known/openid-configuration",
                         headers={"If-None-Match": etag})
    assert again.status_code == 304
    jwks = requests.get(meta["jwks_uri"]).json()
    assert all("d" not in key and "p" not in key for key in jwks["keys"])
    assert any(key["alg"] == "ES256" for key in jwks["keys"])


def test_pages_in_chinese(provider):
    page = requests.get(f"{provider.url}/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "用户名" in page.text and 'lang="zh-CN"' in page.text
    english = requests.get(f"{provider.url}/login", headers={"Accept-Language": "en-US"})
    assert "Username" in english.text


def test_ui_locales_choose_the_language(provider):
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, ui_locales="zh-CN en"))
    assert "/login" in page.url and "登录" in page.text


def test_form_errors_in_chinese(provider):
    session = requests.Session()
    headers = {"Accept-Language": "zh-CN"}
    fields = hidden_inputs(session.get(f"{provider.url}/register", headers=headers).text)
    fields.update(username="zh" + uuid.uuid4().hex[:6], password="short", confirm="short")
    page = session.post(f"{provider.url}/register", data=fields, headers=headers)
    assert page.status_code == 400 and "密码长度至少为 8 个字符" in page.text


def _owner_browser(provider, username: str, password: str) -> requests.Session:
    """A browser the owner signed in with: it holds the account's device cookie."""
    browser = requests.Session()
    assert _post_login(provider, browser, username, password).status_code == 303
    assert "idp_device" in browser.cookies
    return browser


def test_strangers_cannot_lock_the_owner_out(make_provider):
    """Issue 7 finding 3 regression: five wrong passwords from anywhere
    blocked the owner for 15 minutes. A stranger's guesses now wait, and
    the browser the owner signed in with before signs in at once."""
    provider = make_provider()
    username, password, _ = provider.create_account()
    owner = _owner_browser(provider, username, password)
    stranger = requests.Session()
    statuses = [_post_login(provider, stranger, username, "wrong guess!").status_code
                for _ in range(7)]
    assert statuses == [401] * 5 + [429] * 2
    assert _post_login(provider, stranger, username, password).status_code == 429
    assert _post_login(provider, owner, username, password).status_code == 303
    # The owner's own typos count in their browser only, and do not reset
    # the stranger's wait.
    assert _post_login(provider, owner, username, "typo!").status_code == 401
    assert _post_login(provider, owner, username, password).status_code == 303
    assert _post_login(provider, stranger, username, password).status_code == 429


def test_strangers_are_delayed_progressively_not_blocked(make_provider):
    """After the free failures each attempt waits, twice as long after each
    further failure; once the wait is over the next attempt is checked."""
    provider = make_provider(throttle={"account_failures": 3, "first_delay": 1,
                                       "max_delay": 4})
    username, password, _ = provider.create_account()
    stranger = requests.Session()
    assert [_post_login(provider, stranger, username, "wrong guess!").status_code
            for _ in range(3)] == [401] * 3
    waits = []
    for attempt in range(3):
        refused = _post_login(provider, stranger, username, "wrong guess!")
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert f"Try again in {wait} second" in refused.text
        waits.append(wait)
        time.sleep(wait + 0.2)
        guess = password if attempt == 2 else "wrong guess!"
        assert _post_login(provider, stranger, username, guess).status_code == \
            (303 if attempt == 2 else 401)
    assert waits == [1, 2, 4]


def test_a_stolen_device_cookie_locks_out_only_itself(make_provider):
    """A device cookie used for guessing is slowed down itself (its nonce):
    the owner's other browsers and unknown browsers are not."""
    provider = make_provider()
    username, password, _ = provider.create_account()
    stolen_from = _owner_browser(provider, username, password)
    laptop = _owner_browser(provider, username, password)
    thief = requests.Session()
    thief.cookies.set("idp_device", stolen_from.cookies["idp_device"])
    statuses = [_post_login(provider, thief, username, "wrong guess!").status_code
                for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert _post_login(provider, thief, username, password).status_code == 429
    assert _post_login(provider, laptop, username, password).status_code == 303
    assert _post_login(provider, requests.Session(), username, password).status_code == 303


def test_a_device_cookie_counts_only_for_its_account(make_provider):
    """A browser signed in to one account is unknown to every other one, and
    a forged or altered device cookie is no cookie."""
    provider = make_provider(throttle={"account_failures": 2})
    mine, my_password, _ = provider.create_account()
    victim, victim_password, _ = provider.create_account()
    attacker = _owner_browser(provider, mine, my_password)
    assert [_post_login(provider, attacker, victim, "wrong guess!").status_code
            for _ in range(3)] == [401, 401, 429]
    # The attacker's cookie, altered to name the victim, is no cookie.
    _mine, generation, issued, nonce, proof, mac = attacker.cookies["idp_device"].split(".")
    with provider.app.app_context():
        from idp.accounts.service import find_by_username

        victim_id = find_by_username(victim).id
    forged = requests.Session()
    forged.cookies.set("idp_device",
                       f"{victim_id}.{generation}.{issued}.{nonce}.{proof}.{mac}")
    assert _post_login(provider, forged, victim, victim_password).status_code == 429
