"""``idp migrate`` and ``idp users show`` on folded rows: the --json
contract, idempotence, review, reports and clear errors."""

from __future__ import annotations

import csv
import io
import json
import secrets

from tests.integration.test_cli import run
from tests.migration.test_fold import md5, valid_id


def code(base: str) -> str:
    return f"{base}{secrets.token_hex(3)}"


def answer(env, *args) -> dict:
    result = run(env, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plan_then_run_then_nothing(cli_env, department):
    h = code("H")
    ident = valid_id("19700101", "013")
    path = str(department(h, [
        {"id": "1", "login": "a" + h.lower(), "name": "甲", "id_no": ident, "status": "NORMAL",
         "pwd": md5("x")},
        {"id": "2", "login": "b" + h.lower(), "name": "甲", "id_no": ident, "status": "NORMAL"},
        {"id": "3", "name": "乙", "id_no": "990101200001010015", "status": "NORMAL"},
        {"id": "4", "name": "丙", "status": "DELETED"}]))
    plan = answer(cli_env, "migrate", "plan", path, "--json")
    for key in ("new", "matched", "conflicts", "rejected", "tombstones"):
        assert isinstance(plan[key], int)
    assert (plan["new"], plan["matched"], plan["rejected"], plan["tombstones"]) == (1, 1, 1, 1)
    assert plan["rejected_reasons"] == {"resident_id_check_character": 1}
    assert run(cli_env, "migrate", "links", h, "1").exit_code == 1
    first = answer(cli_env, "migrate", "run", path, "--json")
    assert first["written"] == 4
    assert {k: first[k] for k in ("new", "matched", "rejected", "tombstones")} == \
        {k: plan[k] for k in ("new", "matched", "rejected", "tombstones")}
    second = answer(cli_env, "migrate", "run", path, "--json")
    assert second["written"] == 0 and second["unchanged"] == 4
    shown = answer(cli_env, "users", "show", "a" + h.lower(), "--json")
    assert sorted(link["legacy_id"] for link in shown["legacy_links"]) == ["1", "2"]
    assert shown["legacy_credentials"] == 1
    report = answer(cli_env, "migrate", "report", str(first["batch"]), "--format", "json")
    assert sorted((row["legacy_id"], row["outcome"]) for row in report["rows"]) == [
        ("1", "imported"), ("2", "merged"), ("3", "rejected"), ("4", "tombstone")]
    rows = list(csv.DictReader(io.StringIO(run(cli_env, "migrate", "report",
                                               str(first["batch"]), "--format",
                                               "csv").output)))
    assert [row["reason"] for row in rows if row["outcome"] == "rejected"] == \
        ["resident_id_check_character"]
    page = run(cli_env, "migrate", "report", str(first["batch"]), "--format", "html").output
    assert page.startswith("<!doctype html>") and page.count("<tr>") == 5
    tomb = answer(cli_env, "migrate", "links", h, "4", "--json")
    assert tomb["outcome"] == "tombstone" and tomb["account"] is None


def test_timestamps_in_utc_and_unknown_ones_null(cli_env, department):
    h = code("T")
    path = str(department(h, [
        {"id": "1", "login": "t" + h.lower(), "name": "丁", "status": "NORMAL",
         "create_time": "2019-03-01 08:00:00", "last_login": "0000-00-00 00:00:00"},
        {"id": "2", "login": "u" + h.lower(), "name": "戊", "status": "NORMAL",
         "create_time": "1970-01-01 08:00:00", "last_login": "2024-05-05 10:00:00"}]))
    answer(cli_env, "migrate", "run", path, "--json")
    one = answer(cli_env, "users", "show", "t" + h.lower(), "--json")["legacy_links"][0]
    two = answer(cli_env, "users", "show", "u" + h.lower(), "--json")["legacy_links"][0]
    assert (one["created_at"], one["last_login_at"]) == ("2019-03-01T00:00:00Z", None)
    assert (two["created_at"], two["last_login_at"]) == (None, "2024-05-05T02:00:00Z")


def test_review_merge_keep_apart_and_undo(cli_env, department):
    a, b = code("RA"), code("RB")
    ident = valid_id("19660606", "021")
    answer(cli_env, "migrate", "run", str(department(a, [
        {"id": "1", "login": "p" + a.lower(), "name": "张三", "id_no": ident,
         "status": "NORMAL", "pwd": md5("a")}])), "--json")
    held = answer(cli_env, "migrate", "run", str(department(b, [
        {"id": "7", "login": "q" + b.lower(), "name": "张叁", "id_no": ident,
         "status": "NORMAL", "pwd": md5("b")},
        {"id": "8", "login": "Case" + b, "name": "某", "status": "NORMAL"},
        {"id": "9", "login": "case" + b.lower(), "name": "某", "status": "NORMAL"}])),
        "--json")
    assert held["conflicts"] == 2
    open_ = [c for c in answer(cli_env, "migrate", "conflicts", "--json")
             if c["department"] == b]
    kinds = {c["kind"]: c["id"] for c in open_}
    assert set(kinds) == {"name_mismatch", "username_case"}
    merged = run(cli_env, "migrate", "resolve", str(kinds["name_mismatch"]), "--merge")
    assert merged.exit_code == 0 and "merged into" in merged.output
    person = answer(cli_env, "users", "show", "p" + a.lower(), "--json")
    assert {(x["department"], x["legacy_id"]) for x in person["legacy_links"]} == \
        {(a, "1"), (b, "7")}
    assert person["legacy_credentials"] == 2
    apart = answer(cli_env, "migrate", "resolve", str(kinds["username_case"]),
                   "--keep-apart", "--json")
    assert apart["decision"] == "keep_apart"
    assert run(cli_env, "migrate", "resolve", str(kinds["username_case"]),
               "--merge").exit_code == 1
    split = answer(cli_env, "migrate", "undo-merge", "p" + a.lower(), "--json")
    assert len(split["split"]) == 1
    person = answer(cli_env, "users", "show", "p" + a.lower(), "--json")
    assert [x["legacy_id"] for x in person["legacy_links"]] == ["1"]
    other = answer(cli_env, "users", "show", split["split"][0]["public_sub"], "--json")
    assert [x["legacy_id"] for x in other["legacy_links"]] == ["7"]
    assert other["legacy_credentials"] == 1 and other["resident_id"] is None


def test_mapping_mistakes_stop_the_plan_with_a_message(cli_env, department):
    h = code("E")
    good = department(h, [{"id": "1", "status": "NORMAL"}])
    text = good.read_text()
    cases = {
        "unknown key": (text.replace("[options]", "[options]\nspeed = 3"),
                        "options.speed: unknown key"),
        "pepper": (text.replace('scheme = "md5(password)"',
                                'scheme = "md5(password + pepper)"\npepper_env = "NO_SUCH_PEPPER"'),
                   "NO_SUCH_PEPPER is not set"),
        "known answer": (text.replace('scheme = "md5(password)"',
                                      'scheme = "md5(password)"\nknown_answer = ["test123", '
                                      '"cc03e747a6afbbcbf8be7668acfebee6"]'),
                         "known_answer"),
        "missing column": (text.replace('email = "email"', 'email = "mail"'),
                           "missing column(s) mail"),
    }
    for name, (content, message) in cases.items():
        good.write_text(content)
        result = run(cli_env, "migrate", "plan", str(good))
        assert result.exit_code != 0 and message in result.output, (name, result.output)
    good.write_text(text)
    bad_status = good.parent / "users.csv"
    bad_status.write_text(bad_status.read_text().replace("NORMAL", "FROZEN"))
    result = run(cli_env, "migrate", "plan", str(good))
    assert result.exit_code != 0 and "'FROZEN'" in result.output


def test_small_mistakes_of_data_and_mappings_are_named(cli_env, department):
    """Attack findings: a status mapped to a list and an unreadable enabled
    value named no key or row; a legacy id like =HYPERLINK(...) became a
    formula in the CSV report."""
    h = code("F")
    path = department(h, [{"id": '=HYPERLINK("x")', "name": "甲", "status": "NORMAL"},
                          {"id": "2", "name": "乙", "status": "NORMAL", "salt": "0xZZ"}])
    first = answer(cli_env, "migrate", "run", str(path), "--json")
    report = run(cli_env, "migrate", "report", str(first["batch"]), "--format", "csv").output
    assert "'=HYPERLINK" in report
    text = path.read_text()
    path.write_text(text.replace('LOCKED = "disabled"', 'LOCKED = ["disabled"]'))
    result = run(cli_env, "migrate", "plan", str(path))
    assert result.exit_code != 0 and "status.LOCKED" in result.output
    path.write_text(text.replace('status = "status"', 'status = "status"\nenabled = "salt"'))
    result = run(cli_env, "migrate", "plan", str(path))
    assert result.exit_code != 0 and "row 2: columns.enabled" in result.output
