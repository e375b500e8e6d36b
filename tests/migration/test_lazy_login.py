"""Lazy migration: a department that cannot export confirms its users'
first login through its login API (connectors/legacy_login.py), against a
small legacy API server started here that checks the gateway's signature."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.signing import (
    HEADER_DATE,
    HEADER_DIGEST,
    HEADER_NONCE,
    parse_authorization,
    verify_signature,
)
from tests.migration.test_fold import valid_id
from tests.migration.test_legacy_login import fold, legacy_count, sign_in

ACCESS_KEY, SECRET = "lazy-test-key", "lazy-test-secret-0123456789abcdef"


class LegacyApi:
    """A department's login API: users by login name (exact, as the old
    system compared them), each with a password and a profile."""

    def __init__(self) -> None:
        self.users: dict[str, tuple[str, dict]] = {}
        self.calls = 0
        self.down = False
        self.drip = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                api.calls += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = parse_authorization(self.headers.get("Authorization", ""))
                if api.down:
                    return self._answer(503, {"error": "down"})
                if api.drip:
                    # Headers, then a byte now and then, each within any
                    # per-read timeout.
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    for _ in range(40):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
                    return None
                if auth is None or auth[0] != ACCESS_KEY or not verify_signature(
                        SECRET, "POST", self.path, "", self.headers.get(HEADER_DATE, ""),
                        self.headers.get(HEADER_NONCE, ""), body,
                        self.headers.get(HEADER_DIGEST, ""), auth[1]):
                    return self._answer(401, {"error": "bad_signature"})
                asked = json.loads(body)
                known = api.users.get(asked["username"])
                if known is None or known[0] != asked["password"]:
                    return self._answer(200, {"match": False})
                return self._answer(200, {"match": True, "user": known[1]})

            def _answer(self, status, data):
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/legacy/login"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def api():
    server = LegacyApi()
    yield server
    server.stop()


@pytest.fixture
def lazy(make_provider, api):
    code = f"LZ{secrets.token_hex(2)}"
    provider = make_provider(gateway={"access_key": ACCESS_KEY, "secret": SECRET},
                             legacy_login={"endpoints": f"{code}={api.url}"})
    return provider, code, provider.create_client(department=code,
                                                  scope="openid profile legacy")


def test_first_login_folds_the_user_the_department_confirms(lazy, api):
    provider, code, client = lazy
    login = f"ZhangSan{secrets.token_hex(2)}"
    ident = valid_id("19720305", "117")
    api.users[login] = ("Old-pass-2019!", {"legacy_id": "1001", "username": login,
                                           "name": "张三", "resident_id": ident,
                                           "phone": None, "status": "active",
                                           "created_at": "2019-03-01 08:00:00"})
    result, page = sign_in(provider, client, login, "wrong-password", "openid")
    assert result is None and page.status_code == 401
    (rp, _token), _ = sign_in(provider, client, login, "Old-pass-2019!",
                              "openid profile legacy")
    assert rp.get(f"{provider.url}/userinfo").json()["legacy_ids"] == ["1001"]
    calls = api.calls
    # The password is the account's own now: no second call, any client.
    assert sign_in(provider, provider.create_client(), ident, "Old-pass-2019!",
                   "openid")[0] is not None
    assert api.calls == calls


def test_a_confirmed_user_is_linked_to_the_person_an_export_made(lazy, api, department):
    provider, code, client = lazy
    ident = valid_id("19810707", "226")
    other = f"EX{secrets.token_hex(2)}"
    fold(provider, department(other, [{"id": "5", "login": "ex" + other.lower(),
                                       "name": "李四", "id_no": ident, "status": "NORMAL",
                                       "pwd": hashlib.md5(b"Export-pass-1").hexdigest()}]))
    assert legacy_count(provider, ident) == 1
    api.users["lisi-" + code] = ("Dept-pass-2020!", {"legacy_id": "77", "name": "李四",
                                                     "resident_id": ident})
    # The department's word links its row to the person, but never opens
    # an account another department's data made (a compromised department
    # API could name anyone's ID number): the person signs in with their
    # own legacy password.
    result, page = sign_in(provider, client, "lisi-" + code, "Dept-pass-2020!", "openid")
    assert result is None and page.status_code == 401
    assert legacy_count(provider, ident) == 1
    assert sign_in(provider, client, ident, "Export-pass-1", "openid")[0] is not None


def test_the_department_password_never_replaces_an_own_one(lazy, api):
    provider, code, client = lazy
    username, password, _sub = provider.create_account()
    ident = valid_id("19900909", "335")
    from idp.accounts.service import find_by_username, set_resident_id
    from idp.extensions import db

    with provider.app.app_context():
        set_resident_id(provider.runtime, find_by_username(username), ident)
        db.session.commit()
    api.users["wangwu-" + code] = ("Dept-pass-2021!", {"legacy_id": "88", "name": None,
                                                       "resident_id": ident})
    result, page = sign_in(provider, client, "wangwu-" + code, "Dept-pass-2021!", "openid")
    assert result is None and page.status_code == 401
    assert sign_in(provider, client, username, password, "openid")[0] is not None


def test_an_api_that_is_down_or_answers_wrongly_fails_the_login_cleanly(lazy, api):
    provider, code, client = lazy
    api.users["zhao-" + code] = ("Dept-pass-2022!", {"legacy_id": "99"})
    api.down = True
    try:
        result, page = sign_in(provider, client, "zhao-" + code, "Dept-pass-2022!", "openid")
    finally:
        api.down = False
    assert result is None and page.status_code == 401
    assert "Traceback" not in page.text
    api.users["bad-" + code] = ("Dept-pass-2023!", {"legacy_id": "", "name": "x"})
    result, page = sign_in(provider, client, "bad-" + code, "Dept-pass-2023!", "openid")
    assert result is None and page.status_code == 401
    # Another department's client never asks this department.
    calls = api.calls
    plain = provider.create_client()
    assert sign_in(provider, plain, "zhao-" + code, "Dept-pass-2022!", "openid")[0] is None
    assert api.calls == calls


def test_endpoints_must_be_https_or_loopback():
    from connectors.legacy_login import HttpLegacyLogin

    with pytest.raises(ValueError):
        HttpLegacyLogin("http://legacy.example.gov.cn/login", "k", "s")
    with pytest.raises(ValueError):
        HttpLegacyLogin("https://legacy.example.gov.cn/login?x=1", "k", "s")
    assert HttpLegacyLogin("https://legacy.example.gov.cn/login", "k", "s").endpoint


def test_a_hostile_answer_is_unavailable_not_a_failure(lazy, api, monkeypatch):
    """Attack findings: an answer too large, too slow, too deep, or with
    values the database cannot hold fails the login cleanly."""
    provider, code, client = lazy
    api.users["deep-" + code] = ("Dept-pass-2024!", {"legacy_id": "5", "name": "x\u0000y"})
    result, page = sign_in(provider, client, "deep-" + code, "Dept-pass-2024!", "openid")
    assert result is None and page.status_code == 401
    api.users["old-" + code] = ("Dept-pass-2025!", {"legacy_id": "6", "name": "钱老",
                                                    "created_at": "0001-01-01 00:00:00"})
    assert sign_in(provider, client, "old-" + code, "Dept-pass-2025!", "openid")[0]
    from connectors import legacy_login

    monkeypatch.setattr(legacy_login, "MAX_ANSWER", 10)
    api.users["big-" + code] = ("Dept-pass-2026!", {"legacy_id": "7"})
    result, page = sign_in(provider, client, "big-" + code, "Dept-pass-2026!", "openid")
    assert result is None and page.status_code == 401


def test_a_name_someone_else_holds_still_reaches_the_department(lazy, api):
    """Attack finding: a username equal to a lazy department's user's login
    name made the department never asked."""
    provider, code, client = lazy
    name = f"squat{secrets.token_hex(3)}"
    provider.create_account(username=name)
    api.users[name] = ("Dept-pass-2027!", {"legacy_id": "42", "name": "蒋二"})
    calls = api.calls
    (rp, _token), _ = sign_in(provider, client, name, "Dept-pass-2027!",
                              "openid profile legacy")
    assert api.calls == calls + 1
    assert rp.get(f"{provider.url}/userinfo").json()["legacy_ids"] == ["42"]
    # Next time the department's alias finds the user without asking.
    assert sign_in(provider, client, name, "Dept-pass-2027!", "openid")[0] is not None
    assert api.calls == calls + 1


def test_a_dripping_department_is_given_up_at_the_deadline(make_provider, api):
    """Second attack: the deadline was checked between 4 KiB reads only."""
    code = f"LD{secrets.token_hex(2)}"
    provider = make_provider(gateway={"access_key": ACCESS_KEY, "secret": SECRET},
                             legacy_login={"endpoints": f"{code}={api.url}", "timeout": 0.5})
    client = provider.create_client(department=code)
    api.drip = True
    try:
        started = time.monotonic()
        result, page = sign_in(provider, client, "drip-" + code, "Dept-pass-2028!", "openid")
        took = time.monotonic() - started
    finally:
        api.drip = False
    assert result is None and page.status_code == 401
    assert took < 3, took


def test_the_departments_word_never_opens_an_account_its_export_made(lazy, api, department):
    """Second attack: a compromised API naming a legacy id of the
    department's own export landed in that account."""
    provider, code, client = lazy
    ident = valid_id("19830303", "442")
    fold(provider, department(code, [{"id": "1001", "login": "x" + code.lower(),
                                      "name": "陈明", "id_no": ident, "status": "NORMAL",
                                      "pwd": hashlib.md5(b"Owner-pass-1").hexdigest()}]))
    api.users["anyone-" + code] = ("Attacker-pass-1", {"legacy_id": "1001", "name": "陈明",
                                                       "email": "attacker@example.test"})
    result, page = sign_in(provider, client, "anyone-" + code, "Attacker-pass-1", "openid")
    assert result is None and page.status_code == 401
    # A refused lazy login leaves no trace: the export's row, name, e-mail
    # and legacy hash are as they were.
    from idp.accounts.service import find_for_login

    with provider.app.app_context():
        assert find_for_login(provider.runtime, ident).email is None
    assert legacy_count(provider, ident) == 1
    assert sign_in(provider, client, ident, "Owner-pass-1", "openid")[0] is not None
