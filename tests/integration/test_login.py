"""Login and registration pages: CSRF, throttling without enumeration,
re-hash on parameter change, audit events."""

from __future__ import annotations

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
    assert "Too many failed attempts" in blocked.text
    # An unknown account is throttled the same way (no enumeration).
    ghost = "ghost" + uuid.uuid4().hex[:6]
    for _ in range(3):
        _post_login(provider, session, ghost, "bad password")
    assert _post_login(provider, session, ghost, "bad password").status_code == 429
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


def test_successful_login_sets_sso_cookie_and_audits(provider):
    from idp.audit.models import AuditEvent

    username, password, _ = provider.create_account()
    response = _post_login(provider, requests.Session(), username, password)
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "idp_sso=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
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
    assert done.status_code == 303
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
