"""The fold of legacy rows into accounts (docs/migration.md, "The fold"),
on the run's database: matching, merges, conflicts, tombstones, usernames
and aliases, idempotence and resumption."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import func, select

ID15 = "990101800101001"
ID15_FULL = "990101198001010014"
ID_BAD = "990101200001010015"


def valid_id(birth: str, sequence: str) -> str:
    """An 18-character ID number of area 990101 with its check character."""
    from connectors.identifiers import id_check_character

    first17 = "990101" + birth + sequence
    return first17 + id_check_character(first17)


def full_width(digits: str) -> str:
    return digits.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def fold(rt, path, *, dry_run=False, chunk_rows=1000):
    from migration.mapping import load_mapping
    from migration.runs import fold_mapping

    return fold_mapping(rt, load_mapping(path), dry_run=dry_run, label=str(path),
                        chunk_rows=chunk_rows)


def account_of(rt, code, legacy_id):
    from idp.accounts.links import find_account

    return find_account(rt, "legacy", code, legacy_id)


def count(model) -> int:
    from idp.extensions import db

    return db.session.scalar(select(func.count()).select_from(model))


def unique_code(base: str) -> str:
    import secrets

    return f"{base}{secrets.token_hex(3)}"


def test_same_person_in_two_departments_is_one_account(rt, department):
    from idp.accounts.service import resident_id

    a, b = unique_code("A"), unique_code("B")
    ident = valid_id("19900101", "003")
    first = fold(rt, department(a, [{"id": "1", "login": "li.lei." + a.lower(), "name": "李雷",
                                     "id_no": ident, "pwd": md5("pw-a"), "status": "NORMAL"}]))
    second = fold(rt, department(b, [{"id": "77", "login": "lilei", "name": "李雷",
                                      "id_no": ident, "pwd": md5("pw-b"),
                                      "status": "NORMAL"}]))
    assert first.counts.new == 1 and second.counts.matched == 1
    one, two = account_of(rt, a, "1"), account_of(rt, b, "77")
    assert one is not None and one.id == two.id
    assert resident_id(rt, one) == ident
    assert one.username == "li.lei." + a.lower()


def test_plan_writes_nothing_and_counts_as_run(rt, department):
    from migration.models import LegacyRecord

    code = unique_code("P")
    path = department(code, [
        {"id": "1", "name": "王五", "id_no": valid_id("19900101", "005"), "status": "NORMAL"},
        {"id": "2", "name": "王五", "id_no": valid_id("19900101", "005"), "status": "NORMAL"},
        {"id": "3", "name": "赵六", "id_no": ID_BAD, "status": "NORMAL"},
        {"id": "4", "name": "钱七", "status": "DELETED"},
    ])
    before = count(LegacyRecord)
    plan = fold(rt, path, dry_run=True)
    assert count(LegacyRecord) == before
    assert (plan.counts.new, plan.counts.matched, plan.counts.rejected,
            plan.counts.tombstones) == (1, 1, 1, 1)
    assert plan.counts.rejected_reasons == {"resident_id_check_character": 1}
    run = fold(rt, path)
    assert run.counts.as_dict() == plan.counts.as_dict()
    again = fold(rt, path)
    assert again.counts.written == 0 and again.counts.unchanged == 4


def test_second_run_writes_nothing_and_a_stopped_run_resumes(rt, department, monkeypatch):
    from idp.accounts.models import Account
    from migration import fold as fold_module

    code = unique_code("R")
    rows = [{"id": str(n), "name": "人" + str(n), "status": "NORMAL", "pwd": md5(str(n))}
            for n in range(1, 8)]
    path = department(code, rows)
    accounts_before = count(Account)
    calls = {"n": 0}
    original = fold_module.Folder.fold_chunk

    def dies_in_third_chunk(self, rows):
        calls["n"] += 1
        if calls["n"] == 3:
            original(self, rows[:1])
            raise KeyboardInterrupt
        return original(self, rows)

    monkeypatch.setattr(fold_module.Folder, "fold_chunk", dies_in_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        fold(rt, path, chunk_rows=2)
    monkeypatch.setattr(fold_module.Folder, "fold_chunk", original)
    assert count(Account) == accounts_before + 4
    resumed = fold(rt, path, chunk_rows=2)
    assert resumed.counts.unchanged == 4 and resumed.counts.new == 3
    assert count(Account) == accounts_before + 7


def test_name_mismatch_is_held(rt, department):
    from migration.models import MigrationConflict

    a, b = unique_code("N"), unique_code("M")
    ident = valid_id("19900101", "007")
    fold(rt, department(a, [{"id": "1", "name": "张三", "id_no": ident, "status": "NORMAL"}]))
    result = fold(rt, department(b, [{"id": "1", "name": "李四", "id_no": ident,
                                      "status": "NORMAL"}]))
    assert result.counts.conflicts == 1
    assert account_of(rt, b, "1") is None
    from idp.extensions import db
    kinds = db.session.scalars(select(MigrationConflict.kind).order_by(
        MigrationConflict.id.desc()).limit(1)).all()
    assert kinds == ["name_mismatch"]


def test_same_id_in_one_department_is_one_person_with_two_links(rt, department):
    from idp.accounts.links import links_of
    from idp.accounts.models import LegacyCredential
    from idp.extensions import db

    code = unique_code("U")
    ident = valid_id("19900101", "009")
    fold(rt, department(code, [
        {"id": "u1001", "login": "u1001" + code.lower(), "name": "周八", "id_no": ident,
         "pwd": md5("one"), "status": "NORMAL"},
        {"id": "u1001_admin", "login": "u1001_admin" + code.lower(), "name": "周八",
         "id_no": ident, "pwd": md5("two"), "status": "NORMAL"}]))
    account = account_of(rt, code, "u1001")
    assert account_of(rt, code, "u1001_admin").id == account.id
    legacy = [item.value for item in links_of(rt, account, "legacy", code)]
    assert sorted(legacy) == ["u1001", "u1001_admin"]
    assert db.session.scalar(select(func.count()).where(
        LegacyCredential.account_id == account.id)) == 2


def test_shared_phone_never_merges(rt, department):
    """Case M-MATCH-1."""
    import secrets

    from idp.accounts.service import phone_number

    code = unique_code("S")
    # The case's PHONE_A, ID_M and ID_F, made unique to this test: the
    # database is shared with the rest of the run.
    phone = f"139{secrets.randbelow(10**8):08d}"
    first, second = (valid_id("19880808", f"{secrets.randbelow(500) * 2 + 1:03d}"),
                     valid_id("19880808", f"{secrets.randbelow(500) * 2:03d}"))
    fold(rt, department(code, [
        {"id": "1", "name": "甲", "id_no": first, "mobile": phone, "status": "NORMAL"},
        {"id": "2", "name": "乙", "id_no": second, "mobile": phone, "status": "NORMAL"}]))
    one, two = account_of(rt, code, "1"), account_of(rt, code, "2")
    assert one.id != two.id
    # Marked shared: neither account holds the number, so neither can log
    # in or get an SMS code by it until one of them proves it.
    assert phone_number(rt, one) is None and phone_number(rt, two) is None
    from idp.accounts.service import find_for_login
    assert find_for_login(rt, phone) is None


def test_username_case_collision_goes_to_review(rt, department):
    """Case M-MATCH-3."""
    code = unique_code("C")
    result = fold(rt, department(code, [
        {"id": "1", "login": "ZhangSan" + code, "name": "张三", "status": "NORMAL"},
        {"id": "2", "login": "zhangsan" + code.lower(), "name": "张三", "status": "NORMAL"}]))
    assert result.counts.new == 1 and result.counts.conflicts == 1
    assert account_of(rt, code, "1").username == ("zhangsan" + code).lower()


def test_deleted_and_enabled_is_a_tombstone(rt, department):
    """Case M-MATCH-4."""
    from migration.models import LegacyRecord

    code = unique_code("D")
    path = department(code, [{"id": "9", "name": "孙九", "status": "DELETED",
                              "pwd": md5("x")}])
    text = path.read_text().replace('status = "status"', 'status = "status"\nenabled = "salt"')
    path.write_text(text)
    csv_path = path.parent / "users.csv"
    csv_path.write_text(csv_path.read_text().replace(",DELETED,", ",DELETED,"), encoding="utf-8")
    result = fold(rt, path)
    assert result.counts.tombstones == 1 and result.counts.new == 0
    from idp.extensions import db
    assert db.session.scalar(select(LegacyRecord.outcome).where(
        LegacyRecord.department == code)) == "tombstone"


def test_unknown_status_stops_with_the_row(rt, department):
    from migration.rows import RowError

    code = unique_code("X")
    with pytest.raises(RowError, match="row 1: columns.status .*'FROZEN'"):
        fold(rt, department(code, [{"id": "1", "status": "FROZEN"}]), dry_run=True)


def test_fifteen_digit_id_matches_as_weaker_evidence(rt, department):
    """Case M-ID-2."""
    from idp.extensions import db
    from migration.models import LegacyRecord

    a, b = unique_code("F"), unique_code("G")
    fold(rt, department(a, [{"id": "1", "name": "吴十", "id_no": ID15_FULL,
                             "status": "NORMAL"}]))
    fold(rt, department(b, [{"id": "1", "name": "吴十", "id_no": ID15, "status": "NORMAL"}]))
    assert account_of(rt, a, "1").id == account_of(rt, b, "1").id
    assert db.session.scalar(select(LegacyRecord.reason).where(
        LegacyRecord.department == b)) == "resident_id_15"


def test_raw_values_are_kept_encrypted(rt, department):
    """Case M-TXT-1: the raw values are kept for the audit record."""
    from idp.extensions import db
    from migration.models import LegacyRecord

    code = unique_code("T")
    fold(rt, department(code, [{"id": "1", "name": "张\u200b三",
                                "id_no": full_width(valid_id("19850101", "004")),
                                "mobile": "+86 139-0000-0002", "status": "NORMAL"}]))
    record = db.session.scalar(select(LegacyRecord).where(LegacyRecord.department == code))
    assert "张" not in record.raw_enc
    raw = json.loads(rt.pii.decrypt(f"legacy_row:{code}", record.raw_enc))
    assert raw["name"] == "张\u200b三" and raw["phone"] == "+86 139-0000-0002"
    account = account_of(rt, code, "1")
    assert account.name == "张三"


def test_a_value_carried_by_many_people_becomes_a_placeholder(rt, department):
    """Case M-MATCH-2: beyond the fixed list, a phone or ID number that
    migration.placeholder_people (5) distinct people carry is never matched
    on again, nor stored."""
    import secrets

    from idp.accounts.service import phone_number, resident_id
    from idp.extensions import db
    from migration.models import LegacyRecord, MigrationConflict

    code = unique_code("Q")
    phone = f"139{secrets.randbelow(10**8):08d}"
    shared_id = valid_id("19770707", f"{secrets.randbelow(1000):03d}")
    names = ["赵一", "钱二", "孙三", "李四", "周五", "吴六", "郑七"]
    rows = [{"id": f"p{n}", "name": name, "mobile": phone, "status": "NORMAL"}
            for n, name in enumerate(names)]
    rows += [{"id": f"i{n}", "name": name, "id_no": shared_id, "status": "NORMAL"}
             for n, name in enumerate(names)]
    result = fold(rt, department(code, rows), chunk_rows=3)
    # Phone: the next four people are shared-phone proposals (and the first
    # loses the number it held), then it is a placeholder: no proposal.
    assert phone_number(rt, account_of(rt, code, "p0")) is None
    proposals = db.session.scalar(select(func.count()).select_from(MigrationConflict).join(
        LegacyRecord, LegacyRecord.id == MigrationConflict.record_id).where(
        LegacyRecord.department == code, MigrationConflict.kind == "shared_phone"))
    assert proposals == 4 and result.counts.proposals == 4
    # ID number: the first holds it, four more names are held for review,
    # then the number is a placeholder and the rows are new people without it.
    assert resident_id(rt, account_of(rt, code, "i0")) == shared_id
    assert [account_of(rt, code, f"i{n}") for n in range(1, 5)] == [None] * 4
    for n in (5, 6):
        late = account_of(rt, code, f"i{n}")
        assert late is not None and resident_id(rt, late) is None
    assert result.counts.conflicts == 4


def test_a_row_without_a_name_links_but_its_password_opens_nothing(rt, department):
    """Attack finding: a row of another department with the person's ID
    number and no name (a child's row with a parent's number) is linked,
    but its password must not open the person's account."""
    from idp.accounts.legacy import count_legacy_credentials, verify_legacy
    from idp.extensions import db
    from migration.models import LegacyRecord

    a, b = unique_code("NA"), unique_code("NB")
    ident = valid_id("19600101", "211")
    fold(rt, department(a, [{"id": "1", "name": "张三", "id_no": ident, "status": "NORMAL",
                             "pwd": md5("owner-pass")}]))
    fold(rt, department(b, [{"id": "9", "id_no": ident, "status": "NORMAL",
                             "pwd": md5("intruder-pass")}]))
    owner = account_of(rt, a, "1")
    assert account_of(rt, b, "9").id == owner.id
    assert count_legacy_credentials(owner.id) == 1
    assert verify_legacy(rt, owner, "intruder-pass") is None
    assert verify_legacy(rt, owner, "owner-pass") is not None
    assert db.session.scalar(select(LegacyRecord.reason).where(
        LegacyRecord.department == b)) == "resident_id_unconfirmed"


def test_a_rerun_follows_the_status_and_keeps_the_outcome(rt, department):
    """Attack findings: a row disabled then active again gets its account
    and credential back; active then deleted suspends the account it alone
    made; an updated row stays imported (undo-merge has nothing to split)."""
    from idp.accounts.legacy import count_legacy_credentials
    from idp.extensions import db
    from migration.models import LegacyRecord
    from migration.review import ReviewError, undo_merge

    code = unique_code("ST")
    path = department(code, [{"id": "1", "name": "冯一", "status": "LOCKED",
                              "pwd": md5("pw-1")}])
    fold(rt, path)
    account = account_of(rt, code, "1")
    assert account.status == "suspended" and count_legacy_credentials(account.id) == 0
    department(code, [{"id": "1", "name": "冯一", "status": "NORMAL", "pwd": md5("pw-1")}])
    assert fold(rt, path).counts.updated == 1
    account = account_of(rt, code, "1")
    assert account.status == "active" and count_legacy_credentials(account.id) == 1
    department(code, [{"id": "1", "name": "冯一", "email": "f@example.test",
                       "status": "NORMAL", "pwd": md5("pw-1")}])
    fold(rt, path)
    assert db.session.scalar(select(LegacyRecord.outcome).where(
        LegacyRecord.department == code)) == "imported"
    with pytest.raises(ReviewError):
        undo_merge(rt, account_of(rt, code, "1"), "tester")
    department(code, [{"id": "1", "name": "冯一", "status": "DELETED", "pwd": md5("pw-1")}])
    fold(rt, path)
    account = account_of(rt, code, "1")
    assert account.status == "suspended" and count_legacy_credentials(account.id) == 0


def test_a_nul_or_a_year_one_date_never_stops_the_run(rt, department):
    """Attack findings: a NUL byte (PostgreSQL text cannot hold it) stopped
    the whole run; 0001-01-01 (.NET and Java MinValue) overflowed."""
    from idp.extensions import db
    from migration.fold import Counts, Department, Folder
    from migration.mapping import load_mapping
    from migration.models import MigrationBatch
    from migration.rows import read_row

    code = unique_code("Z")
    mapping = load_mapping(department(code, [{"id": "0", "status": "NORMAL"}]))
    batch = MigrationBatch(department=code, mapping="test", source="test")
    db.session.add(batch)
    db.session.flush()
    rows = [read_row(mapping, {"id": "1", "name": "a\x00b", "status": "NORMAL"}, 1),
            read_row(mapping, {"id": "2", "name": "钱老", "status": "NORMAL",
                               "create_time": "0001-01-01 00:00:00"}, 2)]
    counts = Counts()
    Folder(rt, Department.of(mapping), batch.id, counts).fold_chunk(rows)
    db.session.commit()
    assert counts.rejected_reasons == {"nul_character": 1} and counts.new == 1
    assert rows[1].created_at is None


def test_whoever_proves_a_migrated_phone_takes_it(rt, department, account):
    """Attack finding: an unproven legacy number blocked its real owner's
    registration and binding. Possession outranks a record's word."""
    import secrets

    from idp.accounts.service import phone_number, phone_taken, set_phone_number
    from idp.extensions import db

    code = unique_code("PH")
    phone = f"139{secrets.randbelow(10**8):08d}"
    fold(rt, department(code, [{"id": "1", "name": "卫一", "mobile": phone,
                                "status": "NORMAL"}]))
    migrated = account_of(rt, code, "1")
    assert phone_number(rt, migrated) == "+86" + phone and not phone_taken(rt, phone)
    owner = db.session.merge(account)
    set_phone_number(rt, owner, phone, verified=True)
    db.session.commit()
    assert phone_number(rt, account_of(rt, code, "1")) is None
    assert phone_taken(rt, phone)


def test_an_unconfirmed_row_stays_without_a_password_through_reruns(rt, department):
    """Second attack: a status change on a rerun gave the nameless row its
    password back, and an unconfirmed row named the account so that the
    next row seemed confirmed."""
    from idp.accounts.legacy import count_legacy_credentials

    a, b = unique_code("UA"), unique_code("UB")
    ident = valid_id("19590909", "613")
    fold(rt, department(a, [{"id": "1", "id_no": ident, "status": "NORMAL",
                             "pwd": md5("owner")}]))
    owner_id = account_of(rt, a, "1").id
    path = department(b, [{"id": "9", "id_no": ident, "status": "LOCKED",
                           "pwd": md5("child")}])
    fold(rt, path)
    for status in ("NORMAL", "DELETED", "NORMAL"):
        department(b, [{"id": "9", "id_no": ident, "status": status, "pwd": md5("child")}])
        fold(rt, path)
        assert count_legacy_credentials(owner_id) == 1, status
    c = unique_code("UC")
    fold(rt, department(c, [{"id": "e1", "name": "假名", "id_no": ident, "status": "NORMAL",
                             "pwd": md5("e1")},
                            {"id": "e2", "name": "假名", "id_no": ident, "status": "NORMAL",
                             "pwd": md5("e2")}]))
    assert count_legacy_credentials(owner_id) == 1
    assert account_of(rt, a, "1").name is None


def test_an_unconfirmed_row_never_lifts_a_suspension(rt, department):
    """Third attack: a nameless row of another department, disabled then
    active on a rerun, reactivated an account its own department disabled."""
    a, b = unique_code("SA"), unique_code("SB")
    ident = valid_id("19571111", "718")
    fold(rt, department(a, [{"id": "1", "name": "韩一", "id_no": ident, "status": "LOCKED"}]))
    path = department(b, [{"id": "2", "id_no": ident, "status": "LOCKED"}])
    fold(rt, path)
    department(b, [{"id": "2", "id_no": ident, "status": "NORMAL"}])
    fold(rt, path)
    assert account_of(rt, a, "1").status == "suspended"
