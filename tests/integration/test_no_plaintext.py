"""No plaintext personal identifiers at rest, in logs or in tokens.

One person goes through every path that handles their resident ID, phone
and social security card numbers -- registration by phone, SMS sign-in,
verification to level 3, password login by each identifier, failed and
throttled logins, a relying party with every identity scope and the claims
parameter asking for everything, refresh, introspection, step-up, a kiosk
card read, a password reset -- while every log record and every token the
provider signs is captured. Then the database, the ephemeral store, the
logs and the tokens are searched for the identifiers in clear.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from pathlib import Path

import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from connectors.sandbox import read_outbox
from tests.helpers import Browser, callback_params, hidden_inputs, redeem
from tests.sandbox_support import fresh_person

PASSWORD = "a long enough password"
NEW_PASSWORD = "another long password"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.exc_text or ''}")


@pytest.fixture
def captured(monkeypatch):
    """Every log record (DEBUG and up) and every JWT the provider signs."""
    import idp.oidc.tokens as tokens

    handler = _Capture()
    root = logging.getLogger()
    loggers = [logging.getLogger(n) for n in ("idp", "connectors", "werkzeug", "idp.audit")]
    saved = [(lg, lg.level) for lg in [root, *loggers]]
    root.addHandler(handler)
    for lg in [root, *loggers]:
        lg.setLevel(logging.DEBUG)
    signed: list[str] = []
    original = tokens._sign

    def recording_sign(rt, alg, claims, typ):
        token = original(rt, alg, claims, typ)
        signed.append(token)
        return token

    monkeypatch.setattr(tokens, "_sign", recording_sign)
    yield handler.lines, signed
    root.removeHandler(handler)
    for lg, level in saved:
        lg.setLevel(level)


def _form(session, url, **fields):
    page = session.get(url)
    data = hidden_inputs(page.text)
    data.update(fields)
    return session.post(url, data=data, allow_redirects=False), page


def _sms(session, provider, gateway, path, phone, **fields):
    from idp.accounts.identifiers import parse_mobile

    sent, _ = _form(session, f"{provider.url}{path}", phone=phone, action="send")
    code = read_outbox(gateway.data_path, parse_mobile(phone))[-1]["params"]["code"]
    data = hidden_inputs(sent.text)
    data.update(phone=phone, code=code, action="verify", **fields)
    return session.post(f"{provider.url}{path}", data=data, allow_redirects=False)


def _login(provider, identifier, password):
    session = requests.Session()
    done, _ = _form(session, f"{provider.url}/login", username=identifier, password=password)
    return session, done


def _kiosk_read(provider, gateway, person):
    key = ECKey.generate_key("P-256", parameters={"kid": "kiosk"}, private=True)
    kiosk = provider.create_client(grant_types=["client_credentials"],
                                   auth_method="private_key_jwt",
                                   jwks={"keys": [key.as_dict(private=False)]}, kiosk=True)
    now = int(time.time())

    def signed(claims):
        return jose_jwt.encode({"alg": "ES256", "kid": "kiosk"}, claims, key,
                               algorithms=["ES256"])

    card = signed({"iss": kiosk.client_id, "aud": f"{provider.url}/kiosk/login", "iat": now,
                   "exp": now + 60, "jti": uuid.uuid4().hex, "card_type": "social_security",
                   "id_number": person.id_number, "name": person.name,
                   "card_number": person.card_number})
    assertion = signed({"iss": kiosk.client_id, "sub": kiosk.client_id, "aud": provider.url,
                        "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex})
    answer = requests.post(f"{provider.url}/kiosk/login", data={
        "client_id": kiosk.client_id, "card_read": card,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})
    assert answer.status_code == 200, answer.text
    return answer.json()["login_url"]


def _scenario(provider, gateway, person) -> None:
    username = "pii" + uuid.uuid4().hex[:8]
    national = person.phone.removeprefix("+86")
    # Registration by phone, then SMS sign-in.
    registered = _sms(requests.Session(), provider, gateway, "/register/sms", national,
                      username=username, password=PASSWORD, confirm=PASSWORD, name="P")
    assert registered.status_code == 303
    browser = Browser(provider.url)
    assert _sms(browser.session, provider, gateway, "/login/sms",
                person.phone).status_code == 303
    # Verification to level 3 in the console, by every strong proof.
    done, _ = _form(browser.session, f"{provider.url}/account/verify", name=person.name,
                    id_number=person.id_number.lower())
    assert done.status_code == 303
    for fields in ({"method": "card", "card_number": person.card_number},
                   {"method": "carrier"}, {"method": "face", "liveness_token": "pass-1"}):
        done, _ = _form(browser.session, f"{provider.url}/account/verify/strong", **fields)
        assert done.status_code == 303
    assert person.id_number not in browser.session.get(f"{provider.url}/account").text
    # Password logins by each identifier.
    for identifier in (person.id_number, person.card_number, national, username):
        assert _login(provider, identifier, PASSWORD)[1].status_code == 303
    # A relying party allowed every scope asks for every claim everywhere.
    client = provider.create_client(scope="openid profile phone realname idcard "
                                          "offline_access")
    everything = {"verified_claims": {"verification": {"trust_framework": None,
                                                       "evidence": None},
                                      "claims": {"name": None, "birthdate": None}},
                  "phone_number": None, "resident_id_number": None}
    page = browser.go(browser.authorize_url(
        client, scope="openid profile phone realname idcard offline_access", acr_values="L3",
        claims=json.dumps({"id_token": everything, "userinfo": everything})))
    # Signed in by SMS code: the password is the second factor of the step-up;
    # then the consent page (approved by the scripted browser).
    assert "/login/step-up" in page.url, page.url
    stepped = browser.session.post(f"{provider.url}/login/step-up", data={
        **hidden_inputs(page.text), "action": "password", "password": PASSWORD},
        allow_redirects=False)
    page = browser.go(provider.url + stepped.headers["Location"])
    tokens = redeem(provider.url, client, callback_params(page)["code"]).json()
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert info["resident_id_number"] == person.id_number  # released where allowed
    assert info["phone_number"] == person.phone
    refreshed = requests.post(f"{provider.url}/token", auth=client.auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    assert "id_token" in refreshed
    for token in (refreshed["access_token"], refreshed["refresh_token"]):
        assert requests.post(f"{provider.url}/introspect", auth=client.auth,
                             data={"token": token}).json()["active"]
    # Failed logins typed with each identifier, until throttled.
    for identifier in (person.id_number, person.card_number, person.phone) * 2:
        _login(provider, identifier, "wrong password")
    assert _login(provider, person.id_number, PASSWORD)[1].status_code == 429
    # A kiosk card read, and a password reset by SMS.
    kiosk_browser = requests.Session()
    assert kiosk_browser.get(_kiosk_read(provider, gateway, person),
                             allow_redirects=False).status_code == 302
    reset = _sms(requests.Session(), provider, gateway, "/password/reset", person.phone,
                 password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert reset.status_code == 303


def _database_text(provider) -> str:
    from sqlalchemy import MetaData, select

    from idp.extensions import db

    provider.runtime.audit.flush()
    with provider.app.app_context():
        metadata = MetaData()
        metadata.reflect(bind=db.engine)
        rows = [repr(row) for table in metadata.sorted_tables
                for row in db.session.execute(select(table))]
    return "\n".join(rows)


def _raw_files(provider) -> bytes:
    settings = provider.runtime.settings
    paths = [Path(settings["instance_path"]) / name for name in
             ("store.sqlite3", "store.sqlite3-wal")]
    if settings["database_url"].startswith("sqlite:///"):
        database = Path(settings["database_url"].removeprefix("sqlite:///"))
        paths += [database, Path(f"{database}-wal")]
    return b"".join(p.read_bytes() for p in paths if p.exists())


def _redis_text(provider) -> str:
    settings = provider.runtime.settings
    if not settings["redis_url"]:
        return ""
    import redis

    client = redis.Redis.from_url(settings["redis_url"])
    out = []
    for key in client.scan_iter(settings["store_prefix"] + "*"):
        # Maps (an account's sessions, a queue's items) are hashes, queues
        # sorted sets: each is read whole.
        kind = client.type(key)
        value = (client.hgetall(key) if kind == b"hash"
                 else client.zrange(key, 0, -1, withscores=True) if kind == b"zset"
                 else client.get(key))
        out.append(f"{key!r} {value!r}")
    client.close()
    return "\n".join(out)


def _decoded(token: str) -> str:
    parts = token.split(".")
    return " ".join(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode("utf-8", "replace")
                    for p in parts[:2])


def test_no_plaintext_identifier_anywhere(gw, captured):
    provider, gateway = gw
    logs, signed = captured
    person = fresh_person(gateway)
    _scenario(provider, gateway, person)
    national = person.phone.removeprefix("+86")
    plain = [person.id_number, person.id_number.lower(), person.phone, national,
             person.card_number]
    assert len(signed) >= 4 and len(logs) > 50  # the capture saw the run
    places = {
        "database": _database_text(provider),
        "database and store files": _raw_files(provider).decode("latin-1"),
        "redis": _redis_text(provider),
        "logs": "\n".join(logs),
        "tokens": "\n".join(signed) + "\n" + "\n".join(_decoded(t) for t in signed),
    }
    for where, text in places.items():
        for value in plain:
            assert value not in text, f"{value[:3]}... found in the {where}"
    # The identifiers are in the database, encrypted: the search could have found them.
    assert "v1.k1." in places["database"]


def test_login_hint_is_kept_encrypted(gw):
    """Regression: an ID number a relying party sent as ``login_hint`` was
    kept in clear in the store for the life of the sign-in request."""
    provider, gateway = gw
    person = fresh_person(gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client, login_hint=person.id_number))
    assert f'value="{person.id_number}"' in page.text  # still prefilled
    stored = _raw_files(provider).decode("latin-1") + _redis_text(provider)
    assert "interaction:" in stored and person.id_number not in stored
