"""Identifiers against GB 11643-1999, GB 32100-2015 and the field cases
(../shared/cases: M-ID-1, M-ID-2, M-ID-3, M-TXT-1)."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.identifiers import (
    id_check_character,
    mask_phone,
    mask_resident_id,
    uscc_check_character,
)
from idp.accounts.identifiers import (
    IdentifierError,
    normalize_name,
    parse_mobile,
    parse_resident_id,
    parse_uscc,
    upgrade_15,
)

ID_M, ID_F, ID_X, ID_R0 = ("990101200001010014", "990101200001010022", "99010120000101009X",
                           "990101200001010591")
ID_BAD, ID15 = "990101200001010015", "990101800101001"


def _with_remainder(remainder: int) -> str:
    """A valid number whose weighted sum mod 11 is ``remainder``."""
    for seq in range(1000):
        first17 = f"11010119900307{seq:03d}"
        total = sum(int(c) * w for c, w in zip(first17, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9,
                                                         10, 5, 8, 4, 2), strict=True))
        if total % 11 == remainder:
            return first17 + id_check_character(first17)
    raise AssertionError(remainder)


@pytest.mark.parametrize("raw,number,sex", [
    (ID_M, ID_M, "male"), (ID_F, ID_F, "female"), (ID_X, ID_X, "male"),
    ("99010120000101009x", ID_X, "male"), (ID_R0, ID_R0, "male"),
])
def test_m_id_1_valid_numbers(raw, number, sex):
    parsed = parse_resident_id(raw)
    assert parsed.number == number and parsed.sex == sex
    assert parsed.birth_date == date(2000, 1, 1)


@pytest.mark.parametrize("remainder", range(11))
def test_every_remainder_is_accepted(remainder):
    number = _with_remainder(remainder)
    assert parse_resident_id(number).number == number
    assert number[-1] == "10X98765432"[remainder]


def test_m_id_1_wrong_check_character():
    with pytest.raises(IdentifierError) as info:
        parse_resident_id(ID_BAD)
    assert info.value.code == "check_character"
    assert "check character is wrong" in info.value.message


def test_m_id_2_fifteen_digits_are_upgraded():
    parsed = parse_resident_id(ID15)
    assert parsed.number == "990101198001010014" and parsed.upgraded_from == ID15
    # Sequence codes 996-999 belong to centenarians: 18th century.
    assert upgrade_15("990101800101996").startswith("99010118800101996")


@pytest.mark.parametrize("raw,code", [
    ("9.90101E+17", "length"),
    ("990101200001010000", "check_character"),
    ("99010120000101001", "length"),
    ("9901012000010100A4", "characters"),
    ("990101200002300014", "birth_date"),
    ("990101209901010012", "birth_date_future"),
])
def test_m_id_3_damaged_values_are_rejected_with_a_reason(raw, code):
    with pytest.raises(IdentifierError) as info:
        parse_resident_id(raw, today=date(2026, 11, 29))
    assert info.value.code == code


def test_m_txt_1_full_width_and_invisible_characters():
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in ID_M)
    assert parse_resident_id(full_width).number == ID_M
    # The case's own example has only 16 full-width digits (two of ID_M's
    # zeros are missing), so it cannot become ID_M: it is refused, not repaired.
    with pytest.raises(IdentifierError) as info:
        parse_resident_id("９９０１０１２０００１０１０１４")
    assert info.value.code == "length"
    assert parse_resident_id(" 9901\u200b0120 0001010014\ufeff").number == ID_M
    assert normalize_name("张\u200b三") == "张三"
    assert normalize_name("张\u3000三") == "张三"
    assert normalize_name(" Li   Lei ") == "Li Lei"
    assert parse_mobile("+86 139-0000-0001") == "+8613900000001"
    assert parse_mobile("13900000001") == "+8613900000001"


def test_permits_and_area_codes():
    hk = "810000199001011234"
    hk = hk[:17] + id_check_character(hk[:17])
    assert parse_resident_id(hk).kind == "hong_kong_permit"
    tw = "830000199001011234"[:17]
    assert parse_resident_id(tw + id_check_character(tw)).kind == "taiwan_permit"
    assert parse_resident_id(ID_M).kind == "foreign_permanent"
    # A renamed or merged district keeps its old area code: never rejected.
    old = "11010319900101123"  # Beijing Chongwen district, merged in 2010
    assert parse_resident_id(old + id_check_character(old)).warnings == ()
    odd = "10010119900101123"
    assert parse_resident_id(odd + id_check_character(odd)).warnings == ("unknown_province",)


@pytest.mark.parametrize("code", [
    "91350100M000100Y43",   # the worked example of GB 32100-2015
    "91310000132149237G", "9144030071526726XG",
])
def test_uscc_valid(code):
    assert parse_uscc(code) == code
    assert parse_uscc(code.lower()) == code


@pytest.mark.parametrize("authority", "123456789ANY")
def test_uscc_every_registration_authority(authority):
    first17 = authority + "1110000MJ0000000"
    code = first17 + uscc_check_character(first17)
    assert parse_uscc(code) == code


@pytest.mark.parametrize("raw,code", [
    ("91350100M000100Y44", "check_character"),
    ("91350100M000100Y4", "length"),
    ("91350100M000I00Y43", "characters"),
    ("91350100M000100Z43", "characters"),
])
def test_uscc_invalid(raw, code):
    with pytest.raises(IdentifierError) as info:
        parse_uscc(raw)
    assert info.value.code == code


def test_mobile_rules():
    with pytest.raises(IdentifierError) as info:
        parse_mobile("010-12345678")
    assert info.value.code == "not_mobile"
    with pytest.raises(IdentifierError) as info:
        parse_mobile("12345")
    assert info.value.code == "phone_number"


def test_masks():
    assert mask_resident_id("34010419900101123X") == "3401**********123X"
    assert mask_phone("+8613900000001") == "139****0001"


def test_sms_country_check_only_for_sending():
    """Issue 7 finding 4 (SMS pumping): numbers of other countries still
    parse (stored numbers stay findable) but may not receive codes."""
    from idp.accounts.identifiers import check_sms_country

    check_sms_country(parse_mobile("13900000001"), ["86"])
    for raw in ("+1 202 555 0123", "+44 7400 123456"):
        e164 = parse_mobile(raw)
        with pytest.raises(IdentifierError) as info:
            check_sms_country(e164, ["86"])
        assert info.value.code == "country_code"
        assert str(info.value.message) == ("Text messages can only be sent to mobile "
                                           "numbers with the country code +86.")
    check_sms_country(parse_mobile("+44 7400 123456"), ["86", "44"])
