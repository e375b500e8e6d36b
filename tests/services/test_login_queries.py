"""The queries every password login runs, built once (issue 9): the account
by its username, and whether a second factor must follow. Built once, they
answer as the statements built per call did."""

from __future__ import annotations

import secrets

import pyotp

from idp.accounts import service as accounts
from idp.authn import service, totp
from idp.extensions import db
from tests.services.test_assurance import new_resident_id


def test_username_lookup_ignores_case_and_width(rt, account):
    assert accounts.find_by_username(account.username) is account
    assert accounts.find_by_username(f"  {account.username.upper()} ") is account
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in account.username)
    assert accounts.find_by_username(wide) is account
    assert accounts.find_by_username(account.username + "x") is None
    assert accounts.find_for_login(rt, account.username.upper()) is account


def test_second_factor_only_with_a_confirmed_authenticator(rt, account):
    assert not totp.has_totp(account) and not totp.needs_second_factor(account)
    assert not isinstance(service.complete_login(rt, account, ["pwd"], None),
                          service.PendingLogin)
    # Set up but not confirmed: never asked at login.
    secret = totp.start_enrolment(rt, account).secret
    db.session.commit()
    assert totp.credential(account) is not None
    assert not totp.has_totp(account) and not totp.needs_second_factor(account)
    totp.confirm_enrolment(rt, account, pyotp.TOTP(secret).now(), None)
    db.session.commit()
    assert totp.has_totp(account) and totp.needs_second_factor(account)
    assert isinstance(service.complete_login(rt, account, ["pwd"], None), service.PendingLogin)


def test_an_operator_always_needs_a_second_factor(rt, account):
    account.is_admin = True
    db.session.commit()
    assert not totp.has_totp(account) and totp.needs_second_factor(account)
    pending = service.complete_login(rt, account, ["pwd"], None)
    assert isinstance(pending, service.PendingLogin) and pending.enrol


def test_lookups_by_phone_and_resident_id(rt, account):
    """The blind-index lookups of a login by number (each its own built
    statement) find the account that holds the number, and no other."""
    number, phone = new_resident_id(), f"139{secrets.randbelow(10**8):08d}"
    accounts.set_phone_number(rt, account, phone, verified=True)
    accounts.set_resident_id(rt, account, number)
    db.session.commit()
    assert accounts.find_for_login(rt, f"{phone[:3]} {phone[3:7]} {phone[7:]}") is account
    assert accounts.find_for_login(rt, "+86" + phone) is account
    assert accounts.find_for_login(rt, number) is account
    assert accounts.find_by_resident_id(rt, new_resident_id()) is None
