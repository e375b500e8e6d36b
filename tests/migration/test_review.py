"""Review of proposals: a phone and a name shared by two rows propose a
merge that only an operator makes (idp migrate resolve)."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from tests.migration.test_fold import account_of, fold, unique_code


def test_a_phone_and_name_proposal_merges_only_when_resolved(rt, department):
    from idp.accounts.links import links_of
    from idp.accounts.models import Account
    from idp.extensions import db
    from migration.models import MigrationConflict
    from migration.review import ReviewError, resolve

    a, b = unique_code("PA"), unique_code("PB")
    phone = f"139{secrets.randbelow(10**8):08d}"
    fold(rt, department(a, [{"id": "1", "name": "何九", "mobile": phone, "status": "NORMAL"}]))
    result = fold(rt, department(b, [{"id": "2", "name": "何九", "mobile": phone,
                                      "status": "NORMAL"}]))
    assert result.counts.new == 1 and result.counts.proposals == 1
    first, second = account_of(rt, a, "1"), account_of(rt, b, "2")
    assert first.id != second.id
    conflict = db.session.scalar(select(MigrationConflict).where(
        MigrationConflict.account_id == first.id, MigrationConflict.kind == "phone_name"))
    assert conflict is not None and conflict.state == "open"
    done = resolve(rt, conflict.id, merge=True, operator="tester")
    db.session.commit()
    assert "merged" in done
    assert account_of(rt, b, "2").id == first.id
    assert db.session.get(Account, second.id) is None
    assert {(x.issuer, x.value) for x in links_of(rt, account_of(rt, a, "1"), "legacy")} == \
        {(a, "1"), (b, "2")}
    try:
        resolve(rt, conflict.id, merge=True, operator="tester")
    except ReviewError as exc:
        assert "no open conflict" in str(exc)
    else:
        raise AssertionError("a resolved conflict was resolved again")
