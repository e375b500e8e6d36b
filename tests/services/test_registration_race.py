"""Two registrations of one username (or one verified number) at once: the
checks of both pass, the unique index lets one insert through, and the other
must get the form's answer, not a 500 (attack of issue 8, F5; OWASP ASVS
V11.1.6)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from idp.accounts import service as accounts
from idp.accounts.models import Account
from idp.extensions import db
from tests.helpers import DEFAULT_PASSWORD


@pytest.fixture
def competitor(idp, monkeypatch):
    """Let another registration commit ``username`` (with ``phone``) right
    after this one's check ``check`` (a function of the accounts service)
    passed, as a concurrent request would."""
    def arrange(check: str, username: str, phone: str | None = None) -> None:
        checked = getattr(accounts, check)

        def then_the_other_request(*args, **kwargs):
            result = checked(*args, **kwargs)
            monkeypatch.setattr(accounts, check, checked)
            idp.create_account(username, verified_phone=phone)
            return result

        monkeypatch.setattr(accounts, check, then_the_other_request)
    return arrange


def _count(username: str) -> int:
    with db.engine.connect() as other:
        return other.scalar(select(func.count()).select_from(Account)
                            .where(Account.username == username))


def test_the_second_of_two_registrations_of_a_username_is_told_it_is_taken(rt, competitor):
    username = f"race{uuid.uuid4().hex[:8]}"
    competitor("validate_new_account", username)
    with pytest.raises(accounts.AccountErrors) as caught:
        accounts.create_account(rt, username, DEFAULT_PASSWORD)
    assert caught.value.errors == [("username", accounts.USERNAME_TAKEN)]
    # The unit was rolled back, so it can still be used and committed.
    assert accounts.find_by_username(username) is not None
    db.session.commit()
    assert _count(username) == 1


def test_the_second_of_two_registrations_of_a_number_is_told_it_is_held(rt, competitor):
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    competitor("set_phone_number", f"race{uuid.uuid4().hex[:8]}", phone)
    mine = f"race{uuid.uuid4().hex[:8]}"
    with pytest.raises(accounts.AccountError) as caught:
        accounts.create_account(rt, mine, DEFAULT_PASSWORD, verified_phone=phone)
    assert caught.value.field == "phone"
    assert _count(mine) == 0
