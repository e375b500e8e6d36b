"""Legacy values normalised for the fold (migration.normalise): cases
M-ID-1, M-ID-2, M-ID-3, M-TXT-1 and M-MATCH-2 of ../shared/cases."""

from __future__ import annotations

import pytest

from connectors.identifiers import id_check_character
from migration.normalise import PLACEHOLDER, SPREADSHEET_DAMAGE, name, phone, resident_id

ID_M = "990101200001010014"
ID_F = "990101200001010022"
ID_X = "99010120000101009X"
ID_R0 = "990101200001010591"
ID_BAD = "990101200001010015"
ID15 = "990101800101001"
PHONE_A = "13900000001"
#: Valid, its check character fits, and ends in 000 as Excel's rounding leaves them.
ROUNDED = "990101200001019000"


def _full_width(text: str) -> str:
    """``text`` with ASCII digits and ``+`` in their full-width forms."""
    return text.translate({code: code + 0xFEE0 for code in map(ord, "+0123456789")})


@pytest.mark.parametrize("raw", [ID_M, ID_F, ID_X, "99010120000101009x", ID_R0, ROUNDED])
def test_valid_numbers_are_kept_in_their_normal_form(raw):
    """M-ID-1: a lower-case x, both sexes, remainder 0 (check 1)."""
    value = resident_id(raw)
    assert value.value == raw.upper() and value.problem is None and not value.weak
    assert value.raw == raw


def test_every_check_character_and_both_sexes_are_accepted():
    """M-ID-1: every remainder 0..10, with odd (male) and even (female)
    sequence codes."""
    seen: dict[str, set[str]] = {}
    for sequence in range(1000):
        first17 = f"99010120000101{sequence:03d}"
        check = id_check_character(first17)
        seen.setdefault(check, set()).add("male" if sequence % 2 else "female")
        assert resident_id(first17 + check).value == first17 + check
    assert set(seen) == set("0123456789X")
    assert all(sexes == {"male", "female"} for sexes in seen.values())


def test_a_wrong_check_digit_is_rejected_with_its_reason():
    assert resident_id(ID_BAD) == resident_id(ID_BAD).__class__(
        ID_BAD, None, "check_character", None)


def test_a_15_digit_number_is_upgraded_and_kept_as_a_weaker_alias():
    """M-ID-2."""
    value = resident_id(ID15)
    assert value.value == "990101198001010014"
    assert value.alias == ID15 and value.weak


@pytest.mark.parametrize("raw", ["9.90101E+17", "9.90101e+17", "9.90101E17",
                                 "990101200001010000.0", "9,90101E+17"])
def test_scientific_and_decimal_notation_is_spreadsheet_damage(raw):
    """M-ID-3: rejected with a reason, never repaired."""
    value = resident_id(raw)
    assert (value.value, value.problem, value.raw) == (None, SPREADSHEET_DAMAGE, raw)


def test_an_xlsx_number_ending_in_000_is_flagged_even_when_its_check_fits():
    """M-ID-3: Excel kept 15 significant digits; the check character of
    ROUNDED happens to fit, as about 1 in 11 do."""
    assert resident_id(ROUNDED, spreadsheet=True).problem == SPREADSHEET_DAMAGE
    assert resident_id("990101200001010000", spreadsheet=True).problem == SPREADSHEET_DAMAGE
    assert resident_id(ROUNDED).value == ROUNDED  # from a database or CSV: as it is


def test_full_width_and_invisible_characters_are_normalised_keeping_the_raw_value():
    """M-TXT-1. The case's full-width number has 16 characters
    (``９９０１０１２０００１０１０１４`` is 9901012000101014, two zeros short of
    ID_M): it is rejected for its length, not stretched into ID_M; the
    full-width form of ID_M itself becomes ID_M."""
    assert resident_id("９９０１０１２０００１０１０１４").problem == "length"
    full_width = _full_width(ID_M)
    assert resident_id(full_width).value == ID_M
    assert resident_id(full_width).raw == full_width
    assert resident_id(" 9901 0120 0001 0100 14\u200b").value == ID_M
    for raw in ("张\u200b三", "张\u3000三", " 张三 "):
        assert name(raw).value == "张三" and name(raw).raw == raw
    assert phone("+86 139-0000-0001").value == "+8613900000001"
    assert phone(PHONE_A).value == "+8613900000001"
    assert phone(_full_width("+86\u30001390000000") + "１").value == "+8613900000001"


@pytest.mark.parametrize("raw", ["13800000000", "00000000000", "11111111111", "+86 138 0000 0000",
                                 "8613800138000"])
def test_placeholder_phones_are_never_used(raw):
    """M-MATCH-2."""
    assert (phone(raw).value, phone(raw).problem) == (None, PLACEHOLDER)


@pytest.mark.parametrize("raw", ["000000", "111111111111111111", "0" * 18, "0" * 15])
def test_placeholder_ids_are_never_used(raw):
    """M-MATCH-2."""
    assert (resident_id(raw).value, resident_id(raw).problem) == (None, PLACEHOLDER)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_missing_values_are_missing_not_problems(raw):
    for normalise in (resident_id, phone, name):
        value = normalise(raw)
        assert (value.value, value.problem, value.raw) == (None, None, None)


def test_a_value_that_is_no_mobile_number_gives_its_reason():
    assert phone("12").problem == "phone_number"
    assert phone("010-12345678").problem in ("not_mobile", "phone_number")
