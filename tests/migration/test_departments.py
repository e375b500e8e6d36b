"""Six departments of synthetic people (bench/migration/synthetic.py) in
their real legacy stores -- MariaDB, PostgreSQL, a UTF-8 CSV with a BOM, a
GBK CSV and an XLSX workbook -- folded into one account space: every row accounted for, the
same person one account, every failure mode in its place, a second run
writing nothing."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace

import openpyxl
import pytest
from sqlalchemy import func, select

from bench.migration import synthetic

PEOPLE = 600
#: Rows with each failure mode: enough that every mode meets the same
#: person in another department.
FAULTS = 0.02


@pytest.fixture(scope="module")
def crowd():
    return synthetic.people(PEOPLE, seed=11)


@pytest.fixture(scope="module")
def stores(crowd, tmp_path_factory):
    """Each department's mapping path and its rows, written where its
    legacy system keeps them."""
    folder = tmp_path_factory.mktemp("departments")
    specs = {spec.code: spec for spec in synthetic.departments()}
    out = {}
    with synthetic.legacy_database("mariadb") as maria, \
            synthetic.legacy_database("postgresql") as postgres:
        for code, url in (("HS", maria), ("CA", maria), ("HR", postgres)):
            spec = specs[code]
            count = synthetic.write(url, spec, crowd, fault_rate=FAULTS)
            path = folder / f"{code}.toml"
            path.write_text(synthetic.mapping(spec, f'url = "{url}"\ntable = "{spec.table}"'),
                            encoding="utf-8")
            out[code] = (path, count)
        for code, encoding in (("ED", "utf-8-sig"), ("TR", "gbk")):
            spec = specs[code]
            rows = list(synthetic.rows(spec, crowd, fault_rate=FAULTS))
            name = f"{code}.csv"
            with (folder / name).open("w", encoding=encoding, newline="") as stream:
                writer = csv.DictWriter(stream, list(dict.fromkeys(spec.columns.values())))
                writer.writeheader()
                writer.writerows(rows)
            path = folder / f"{code}.toml"
            path.write_text(synthetic.mapping(spec, f'file = "{name}"'), encoding="utf-8")
            out[code] = (path, len(rows))
        # A sixth department keeps its users in a workbook, every cell text.
        spec = replace(specs["ED"], code="XL", cache={})
        rows = list(synthetic.rows(spec, crowd, fault_rate=FAULTS))
        columns = list(dict.fromkeys(spec.columns.values()))
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(columns)
        for row in rows:
            sheet.append([row.get(column) for column in columns])
        book.save(folder / "XL.xlsx")
        path = folder / "XL.toml"
        path.write_text(synthetic.mapping(spec, 'file = "XL.xlsx"'), encoding="utf-8")
        out["XL"] = (path, len(rows))
        yield out


def _fold(rt, path):
    from migration.mapping import load_mapping
    from migration.runs import fold_mapping

    return fold_mapping(rt, load_mapping(path), dry_run=False, label=str(path),
                        chunk_rows=128)


def test_six_departments_fold_into_one_account_space(rt, stores, crowd):
    from idp.accounts.models import Account, IdentityLink
    from idp.extensions import db
    from migration.models import LegacyRecord, MigrationConflict

    before = db.session.scalar(select(func.count()).select_from(Account))
    outcomes = {}
    for code, (path, count) in stores.items():
        outcome = _fold(rt, path)
        counts = outcome.counts
        assert outcome.rows == count
        assert (counts.new + counts.matched + counts.conflicts + counts.rejected
                + counts.tombstones) == count, (code, counts)
        outcomes[code] = outcome
    assert outcomes["TR"].encoding == "gb18030" and outcomes["ED"].encoding == "utf-8"
    # The same person in several departments is one account: each account
    # holds the ID number once, and the links of a person's rows agree.
    made = db.session.scalar(select(func.count()).select_from(Account)) - before
    total = sum(o.counts.new for o in outcomes.values())
    assert made == total
    matched = sum(o.counts.matched for o in outcomes.values())
    assert matched > 0.2 * total
    linked = db.session.execute(select(IdentityLink.account_id, func.count()).where(
        IdentityLink.kind == "legacy", IdentityLink.issuer.in_(list(stores)))
        .group_by(IdentityLink.account_id).having(func.count() > 1)).all()
    assert len(linked) > 0.2 * total
    reasons = Counter()
    for o in outcomes.values():
        reasons.update(o.counts.rejected_reasons)
    assert reasons["resident_id_check_character"] > 0
    kinds = Counter(db.session.scalars(select(MigrationConflict.kind).join(
        LegacyRecord, LegacyRecord.id == MigrationConflict.record_id).where(
        LegacyRecord.department.in_(list(stores)))))
    assert kinds["username_case"] > 0 and kinds["name_mismatch"] > 0
    assert kinds["shared_phone"] + kinds["phone_name"] > 0
    assert sum(o.counts.tombstones for o in outcomes.values()) > 0
    weak = db.session.scalar(select(func.count()).where(
        LegacyRecord.reason == "resident_id_15", LegacyRecord.department.in_(list(stores))))
    assert weak > 0
    # A second run of every department writes nothing.
    for path, count in stores.values():
        again = _fold(rt, path)
        assert again.counts.written == 0 and again.counts.unchanged == count
