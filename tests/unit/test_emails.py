"""E-mail address rules without Flask: shape and normalisation, masking,
when the password is asked, and the mail connector's loopback test."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from connectors.mail import is_loopback
from idp.accounts.emails import mask_email, needs_password
from idp.accounts.service import AccountError, normalize_email


@pytest.mark.parametrize("raw,expected", [
    ("  Li.Na@Example.TEST ", "Li.Na@example.test"),
    ("user+tag@sub.example.test", "user+tag@sub.example.test"),
    ("a@b.c", "a@b.c"),
    # An internationalised domain in its A-label form (IDNA 2008, UTS #46),
    # what browsers send: ß stays ß (IDNA 2003 and casefold make it ss).
    ("anna@Straße.example", "anna@xn--strae-oqa.example"),
    ("li@例子.测试", "li@xn--fsqu00a.xn--0zwm56d"),
    ("li@ｅｘａｍｐｌｅ．test", "li@example.test"),
])
def test_normalize_email_keeps_the_local_part(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", [
    "", "   ", "no-at-sign", "two@@example.test", "a@b", "spaces in@example.test",
    "a@example.test\nBcc: b@example.test", "x" * 250 + "@e.test",
    # WHATWG's check is ASCII-only: a local part outside it needs SMTPUTF8.
    "用户@example.test", "anna@exa_mple.test", "anna@example..test", "anna@-example.test",
    "anna@example.test.", "a\u00a0b@example.test",
])
def test_normalize_email_refuses_what_is_no_address(raw):
    with pytest.raises(AccountError) as info:
        normalize_email(raw)
    assert info.value.field == "email"


def test_mask_email():
    assert mask_email("li.na@example.test") == "l***@example.test"
    assert mask_email("x@example.test") == "x***@example.test"


def _account(email=None, password_hash="$argon2id$..."):
    return SimpleNamespace(email=email, password_hash=password_hash)


def test_the_password_is_asked_for_another_address_only():
    assert needs_password(_account("me@example.test"), "other@example.test")
    assert needs_password(_account(None), "new@example.test")
    assert not needs_password(_account("Me@Example.test"), "Me@example.test")
    # Only the account's own address exactly (normalised: the domain's case
    # and its A-label form aside) is exempt; another spelling is another
    # mailbox (issue 7 review, finding 12: casefold made straße strasse).
    assert not needs_password(_account("anna@Straße.example"), "anna@xn--strae-oqa.example")
    assert needs_password(_account("anna@strasse.example"), "anna@xn--strae-oqa.example")
    assert needs_password(_account("Me@example.test"), "me@example.test")
    # An account without a password has nothing stronger to give here.
    assert not needs_password(_account("me@example.test", None), "other@example.test")


@pytest.mark.parametrize("host,expected", [
    ("localhost", True), ("127.0.0.1", True), ("127.5.6.7", True), ("::1", True),
    ("[::1]", True), ("10.0.0.1", False), ("relay.example.test", False),
    ("localhost.example.test", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected
