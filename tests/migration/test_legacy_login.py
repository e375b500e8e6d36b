"""A migrated user logs in through a standard OIDC client (Authlib's) with
a legacy password of any of their departments; then only the password
used works and no legacy hash remains; a department's client receives
``legacy_ids`` (issue 10, "Done when")."""

from __future__ import annotations

import hashlib
import secrets

import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.helpers import Browser, hidden_inputs, pkce_pair
from tests.migration.test_fold import valid_id

PASSWORD_A = "Lantern-harbour-41"
PASSWORD_B = "Quiet-orchard-97"


def fold(provider, path) -> None:
    from migration.mapping import load_mapping
    from migration.runs import fold_mapping

    with provider.app.app_context():
        fold_mapping(provider.runtime, load_mapping(path), dry_run=False, label=str(path))


def legacy_count(provider, identifier: str) -> int:
    from idp.accounts.legacy import count_legacy_credentials
    from idp.accounts.service import find_for_login

    with provider.app.app_context():
        return count_legacy_credentials(find_for_login(provider.runtime, identifier).id)


def sign_in(provider, client, identifier: str, password: str, scope: str):
    """The code flow with Authlib's client; returns (token, final response)."""
    rp = OAuth2Session(client.client_id, client.client_secret, redirect_uri=client.redirect_uri,
                       scope=scope, code_challenge_method="S256")
    verifier, _ = pkce_pair()
    url, _state = rp.create_authorization_url(f"{provider.url}/authorize", nonce="n",
                                              code_verifier=verifier)
    browser = Browser(provider.url)
    response = browser.go(url, username=identifier, password=password)
    if response.status_code != 302:
        return None, response
    token = rp.fetch_token(f"{provider.url}/token",
                           authorization_response=response.headers["Location"],
                           code_verifier=verifier)
    return (rp, token), response


def two_departments(provider, department, *, weak: str | None = None):
    a, b = f"LA{secrets.token_hex(3)}", f"LB{secrets.token_hex(3)}"
    ident = valid_id("1979" + f"{secrets.randbelow(12) + 1:02d}" + "15",
                     f"{secrets.randbelow(900) + 100}")
    salt = "x9Q2ab"
    fold(provider, department(a, [{
        "id": "A-17", "login": "old." + a.lower(), "name": "陈明", "id_no": ident,
        "pwd": hashlib.md5(hashlib.md5((weak or PASSWORD_A).encode()).hexdigest().encode()
                           + salt.encode()).hexdigest(),
        "salt": salt, "status": "NORMAL"}], scheme="md5(md5(password) + salt)"))
    fold(provider, department(b, [{
        "id": "9001", "login": "cm" + b.lower(), "name": "陈明", "id_no": ident,
        "pwd": hashlib.sha1(PASSWORD_B.encode()).hexdigest().upper(), "status": "NORMAL"}],
        scheme="upper(sha1(password))"))
    return a, b, ident


def test_either_old_password_then_only_the_used_one(provider, department):
    a, b, ident = two_departments(provider, department)
    client_b = provider.create_client(department=b, scope="openid profile legacy")
    assert legacy_count(provider, ident) == 2
    # The alias at B's own client, with B's old password.
    (rp, token), _ = sign_in(provider, client_b, "cm" + b.lower(), PASSWORD_B,
                             "openid profile legacy")
    claims = rp.get(f"{provider.url}/userinfo").json()
    assert claims["legacy_ids"] == ["9001"]
    assert legacy_count(provider, ident) == 0
    # Only the password used works now, by any identifier.
    plain = provider.create_client()
    result, page = sign_in(provider, plain, ident, PASSWORD_A, "openid")
    assert result is None and page.status_code == 401
    result, _ = sign_in(provider, plain, "old." + a.lower(), PASSWORD_B, "openid")
    assert result is not None


def test_the_other_department_password_works_first(provider, department):
    a, b, ident = two_departments(provider, department)
    plain = provider.create_client()
    result, _ = sign_in(provider, plain, "old." + a.lower(), PASSWORD_A, "openid profile")
    (rp, token) = result
    assert "legacy_ids" not in rp.get(f"{provider.url}/userinfo").json()
    assert legacy_count(provider, ident) == 0
    result, page = sign_in(provider, plain, ident, PASSWORD_B, "openid")
    assert result is None


def test_a_department_client_sees_only_its_own_ids(provider, department):
    a, b, ident = two_departments(provider, department)
    client_a = provider.create_client(department=a)
    (rp, token), _ = sign_in(provider, client_a, ident, PASSWORD_B,
                             "openid profile legacy")
    from jose import jwt

    id_token = jwt.get_unverified_claims(token["id_token"])
    assert id_token["legacy_ids"] == ["A-17"]
    assert rp.get(f"{provider.url}/userinfo").json()["legacy_ids"] == ["A-17"]


def test_weak_legacy_password_logs_in_once_and_must_change(provider, department):
    """Case M-PW-3."""
    a, _b, ident = two_departments(provider, department, weak="123456")
    client = provider.create_client()
    rp = OAuth2Session(client.client_id, client.client_secret, redirect_uri=client.redirect_uri,
                       scope="openid", code_challenge_method="S256")
    verifier, _ = pkce_pair()
    url, _state = rp.create_authorization_url(f"{provider.url}/authorize", nonce="n",
                                              code_verifier=verifier)
    browser = Browser(provider.url)
    page = browser.go(url, username=ident, password="123456")
    assert page.status_code == 200 and page.url.endswith("/login/new-password?i=" +
                                                         hidden_inputs(page.text)["i"])
    assert legacy_count(provider, ident) == 0
    # Tokens wait for the change: the authorization endpoint sends back here.
    again = browser.session.get(url, allow_redirects=False)
    assert "/login/new-password" in again.headers["Location"]
    fields = hidden_inputs(page.text)
    weak = browser.session.post(f"{provider.url}/login/new-password",
                                data={**fields, "password": "123456", "confirm": "123456"})
    assert weak.status_code == 400
    fields.update(password="Stronger-pass-2026", confirm="Stronger-pass-2026")
    done = browser.session.post(f"{provider.url}/login/new-password", data=fields,
                                allow_redirects=False)
    final = browser.go(requests.compat.urljoin(provider.url, done.headers["Location"]))
    assert final.status_code == 302 and final.headers["Location"].startswith(client.redirect_uri)
    assert sign_in(provider, client, ident, "123456", "openid")[0] is None
    assert sign_in(provider, client, ident, "Stronger-pass-2026", "openid")[0] is not None


def test_a_phone_shaped_old_login_name_works_at_its_department(provider, department):
    """Attack finding: a legacy login name that parses as a mobile number
    went to the phone lookup and never reached the department's alias."""
    code = f"LP{secrets.token_hex(3)}"
    login = f"139{secrets.randbelow(10**8):08d}"
    fold(provider, department(code, [{"id": "3", "login": login, "name": "褚三",
                                      "pwd": hashlib.md5(PASSWORD_A.encode()).hexdigest(),
                                      "status": "NORMAL"}]))
    client = provider.create_client(department=code)
    assert sign_in(provider, client, login, PASSWORD_A, "openid")[0] is not None


def test_the_account_console_waits_for_the_new_password(provider, department):
    """Attack finding: the forced change was only asked at /authorize."""
    _a, _b, ident = two_departments(provider, department, weak="123456")
    browser = Browser(provider.url)
    page = browser.session.get(f"{provider.url}/login?next=/account")
    fields = hidden_inputs(page.text)
    fields.update(username=ident, password="123456")
    browser.session.post(f"{provider.url}/login", data=fields, allow_redirects=False)
    for path in ("/account", "/account/phone", "/account/email"):
        answer = browser.session.get(f"{provider.url}{path}", allow_redirects=False)
        assert answer.status_code in (302, 303), path
        assert "/login/new-password" in answer.headers["Location"], path
