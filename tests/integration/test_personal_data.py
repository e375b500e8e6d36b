"""Personal identifiers are stored encrypted, found by blind index, and
released only under the scope that covers them."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import Browser, redeem

PHONE, RESIDENT_ID = "13900000001", "990101200001010014"


@pytest.fixture(scope="module")
def holder(provider):
    from idp.accounts.service import find_by_username, set_phone_number, set_resident_id
    from idp.extensions import db

    username, password, sub = provider.create_account()
    with provider.app.app_context():
        account = find_by_username(username)
        set_phone_number(provider.runtime, account, "+86 139-0000-0001", verified=True)
        set_resident_id(provider.runtime, account, "99010120000101001４")
        db.session.commit()
    return username, password, sub


def test_stored_encrypted_with_blind_index(provider, holder):
    from sqlalchemy import text

    from idp.extensions import db

    with provider.app.app_context():
        rows = db.session.execute(text(
            "SELECT phone_number_enc, phone_number_index, resident_id_enc, resident_id_index "
            "FROM accounts WHERE username = :u"), {"u": holder[0]}).one()
    dump = " ".join(rows)
    for plain in (PHONE, RESIDENT_ID, "+86" + PHONE):
        assert plain not in dump
    assert rows[0].startswith("v1.") and len(rows[1]) == 64


def test_database_file_holds_no_plaintext(provider, holder):
    url = provider.runtime.settings["database_url"]
    if not url.startswith("sqlite:///"):
        pytest.skip("file check applies to the SQLite database")
    from pathlib import Path

    provider.runtime.audit.flush()
    database = Path(url.removeprefix("sqlite:///"))
    data = b"".join(path.read_bytes() for path in (database, Path(f"{database}-wal"))
                    if path.exists())
    assert PHONE.encode() not in data and RESIDENT_ID.encode() not in data


def test_lookup_by_any_format(provider, holder):
    from idp.accounts.service import find_by_phone, find_by_resident_id

    with provider.app.app_context():
        assert find_by_phone(provider.runtime, "139 0000 0001").username == holder[0]
        assert find_by_phone(provider.runtime, "+8613900000001").username == holder[0]
        assert find_by_resident_id(provider.runtime, "990101200001010014").username == holder[0]
        assert find_by_phone(provider.runtime, "13900000002") is None
        assert find_by_phone(provider.runtime, "not a number") is None


def test_one_account_per_identifier(provider, holder):
    from idp.accounts.service import AccountError, find_by_username, set_phone_number

    other, _, _ = provider.create_account()
    with provider.app.app_context():
        with pytest.raises(AccountError) as info:
            set_phone_number(provider.runtime, find_by_username(other), PHONE, verified=False)
        assert info.value.field == "phone"


def test_phone_released_only_with_phone_scope(provider, holder):
    client = provider.create_client()
    browser = Browser(provider.url)
    code = browser.login_for_code(client, holder[0], holder[1], scope="openid phone")["code"]
    token = redeem(provider.url, client, code).json()["access_token"]
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert info["phone_number"] == "+8613900000001" and info["phone_number_verified"] is True
    code = browser.login_for_code(client, "", "", scope="openid profile")["code"]
    token = redeem(provider.url, client, code).json()["access_token"]
    info = requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert "phone_number" not in info


def test_login_with_resident_id_or_verified_phone(provider, holder):
    from tests.helpers import hidden_inputs

    def login(identifier):
        session = requests.Session()
        fields = hidden_inputs(session.get(f"{provider.url}/login").text)
        fields.update(username=identifier, password=holder[1])
        return session.post(f"{provider.url}/login", data=fields, allow_redirects=False)

    full_width = "".join(chr(ord(c) + 0xFEE0) for c in RESIDENT_ID)
    for identifier in (RESIDENT_ID, full_width, "13900000001", "+86 139 0000 0001",
                       holder[0]):
        assert login(identifier).status_code == 303, identifier
    assert login("990101200001010022").status_code == 401


def test_unverified_phone_is_not_a_login_identifier(provider):
    from idp.accounts.service import find_by_username, set_phone_number
    from idp.extensions import db
    from tests.helpers import hidden_inputs

    username, password, _ = provider.create_account()
    with provider.app.app_context():
        set_phone_number(provider.runtime, find_by_username(username), "13900000077",
                         verified=False)
        db.session.commit()
    session = requests.Session()
    fields = hidden_inputs(session.get(f"{provider.url}/login").text)
    fields.update(username="13900000077", password=password)
    assert session.post(f"{provider.url}/login", data=fields).status_code == 401


@pytest.mark.parametrize("name", ["13900000001", "990101200001010014", "99010120000101009x"])
def test_usernames_cannot_look_like_identifiers(provider, name):
    from idp.accounts.service import AccountError, create_account

    with provider.app.app_context():
        with pytest.raises(AccountError) as info:
            create_account(provider.runtime, name, "long enough pass")
    assert info.value.field == "username"
