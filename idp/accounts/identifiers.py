"""Personal and legal-entity identifiers: resident ID numbers (GB 11643-1999),
Unified Social Credit Codes (GB 32100-2015) and mobile numbers (E.164).

Written from the standards themselves, and no stricter: an area code is never
checked against a list (a number keeps the area code of its registration
forever, also after districts are renamed, merged or created), and the
registration-authority and category characters of a credit code are not
restricted beyond the code's alphabet. Input is normalised first (full-width
to half-width, spaces and invisible characters removed). The check-character
arithmetic and the masks live in :mod:`connectors.identifiers`, which the
connectors share.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date

import phonenumbers
from flask_babel import lazy_gettext as _l

from connectors.identifiers import USCC_ALPHABET, id_check_character, uscc_check_character

#: First two digits of the province-level divisions (GB/T 2260), for a soft
#: warning only; 81-83 are Hong Kong, Macau and Taiwan residence permits.
PROVINCE_CODES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
    "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62",
    "63", "64", "65", "71", "81", "82", "83",
})
PERMIT_KINDS = {"810000": "hong_kong_permit", "820000": "macau_permit",
                "830000": "taiwan_permit"}
# Zero-width and other format characters that survive copy and paste.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


class IdentifierError(ValueError):
    """An identifier is not valid.

    :ivar code: machine-readable reason (``length``, ``characters``,
        ``check_character``, ``birth_date``, ``birth_date_future``,
        ``not_mobile``, ``phone_number``, ``country_code``).
    :ivar message: human-readable reason, translated when rendered.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message


def normalize_identifier(raw: str) -> str:
    """NFKC (full-width to half-width), invisible characters and all white
    space removed, letters upper-cased: the form every identifier is checked in."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", raw or ""))
    return "".join(text.split()).upper()


def normalize_name(raw: str) -> str:
    """A person's or entity's name: NFKC, invisible characters removed, white
    space removed between CJK characters and collapsed elsewhere
    (``张\\u3000三`` -> ``张三``, ``Li  Lei`` -> ``Li Lei``)."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", raw or ""))
    text = " ".join(text.split())
    return re.sub(r"(?<=[\u3400-\u9fff\u00b7]) (?=[\u3400-\u9fff\u00b7])", "", text)


@dataclass(frozen=True)
class ResidentId:
    """A valid resident ID number and what it says.

    :ivar number: the 18-character number (upper-case ``X``).
    :ivar kind: ``resident``, ``hong_kong_permit``, ``macau_permit``,
        ``taiwan_permit`` or ``foreign_permanent``.
    :ivar birth_date: date of birth (GB 11643-1999 §4.2).
    :ivar sex: ``male`` (odd sequence code) or ``female`` (even), §4.3.
    :ivar upgraded_from: the 15-digit number it was upgraded from, if any.
    :ivar warnings: soft findings that do not invalidate the number.
    """

    number: str
    kind: str
    birth_date: date
    sex: str
    upgraded_from: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def area_code(self) -> str:
        """The six-digit address code of the registration (§4.1)."""
        return self.number[:6]


def _birth_date(digits: str, today: date) -> date:
    try:
        born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise IdentifierError("birth_date", _l("The birth date in the number is not a valid "
                                               "date.")) from None
    if born > today:
        raise IdentifierError("birth_date_future", _l("The birth date in the number is in "
                                                      "the future."))
    return born


def upgrade_15(number: str) -> str:
    """The 18-character form of a 15-digit number (GB 11643-1999 Appendix):
    insert the century and append the check character. Sequence codes
    996-999 were given to people over 100, so they take the 18th century.

    :raises IdentifierError: if ``number`` is not 15 digits.
    """
    if len(number) != 15 or not number.isascii() or not number.isdigit():
        raise IdentifierError("length", _l("A 15-digit number must have 15 digits."))
    century = "18" if number[12:15] in ("996", "997", "998", "999") else "19"
    first17 = number[:6] + century + number[6:]
    return first17 + id_check_character(first17)


def parse_resident_id(raw: str, today: date | None = None) -> ResidentId:
    """Validate a resident ID number (18 characters, or 15 digits upgraded).

    Hong Kong/Macau/Taiwan residence permits (810000/820000/830000) and the
    permanent-residence ID of foreigners (first digit 9) use the same rules.

    :param raw: the number as typed or read (normalised here).
    :param today: reference date for the future-birth check (default: today).
    :returns: the parsed :class:`ResidentId`.
    :raises IdentifierError: with a specific ``code``.
    """
    today = today or date.today()
    number = normalize_identifier(raw)
    upgraded_from = None
    if len(number) == 15 and number.isascii() and number.isdigit():
        upgraded_from, number = number, upgrade_15(number)
    if len(number) != 18:
        raise IdentifierError("length", _l("A resident ID number has 18 characters."))
    if not (number[:17].isascii() and number[:17].isdigit()) or number[17] not in "0123456789X":
        raise IdentifierError("characters", _l("A resident ID number has 17 digits followed "
                                               "by a digit or X."))
    born = _birth_date(number[6:14], today)
    if number[17] != id_check_character(number[:17]):
        raise IdentifierError("check_character", _l("The check character is wrong: the "
                                                     "number has a typing error."))
    kind = PERMIT_KINDS.get(number[:6]) or ("foreign_permanent" if number[0] == "9"
                                            else "resident")
    warnings = ()
    if kind == "resident" and number[:2] not in PROVINCE_CODES:
        warnings = ("unknown_province",)
    return ResidentId(number=number, kind=kind, birth_date=born,
                      sex="male" if int(number[16]) % 2 else "female",
                      upgraded_from=upgraded_from, warnings=warnings)


def parse_uscc(raw: str) -> str:
    """Validate a Unified Social Credit Code (GB 32100-2015).

    :returns: the normalised 18-character code.
    :raises IdentifierError: ``length``, ``characters`` or ``check_character``.
    """
    code = normalize_identifier(raw)
    if len(code) != 18:
        raise IdentifierError("length", _l("A unified social credit code has 18 characters."))
    if any(c not in USCC_ALPHABET for c in code):
        raise IdentifierError("characters", _l("A unified social credit code uses digits and "
                                               "capital letters except I, O, Z, S and V."))
    if code[17] != uscc_check_character(code[:17]):
        raise IdentifierError("check_character", _l("The check character is wrong: the code "
                                                    "has a typing error."))
    return code


def parse_mobile(raw: str, region: str = "CN") -> str:
    """Normalise a mobile number to E.164 (``+8613900000001``).

    :param region: region assumed for numbers without a country code.
    :raises IdentifierError: ``phone_number`` if it is not a valid number,
        ``not_mobile`` if it is valid but cannot receive SMS.
    """
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", raw or "")).strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise IdentifierError("phone_number", _l("This is not a valid phone number.")) from None
    if not phonenumbers.is_valid_number(number):
        raise IdentifierError("phone_number", _l("This is not a valid phone number."))
    if phonenumbers.number_type(number) not in (phonenumbers.PhoneNumberType.MOBILE,
                                                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise IdentifierError("not_mobile", _l("This number cannot receive text messages; "
                                               "give a mobile number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_sms_country(e164: str, allowed: Collection[str]) -> None:
    """Refuse to send text messages to a number outside the countries
    ``allowed``: international and premium routes are where SMS pumping
    (toll fraud through one-time-code forms) makes its money. Only for
    sending; numbers of other countries are still stored and looked up.

    :param e164: a number from :func:`parse_mobile`.
    :param allowed: country calling codes without ``+``, e.g. ``["86"]``.
    :raises IdentifierError: ``country_code``, naming the allowed codes.
    """
    if str(phonenumbers.parse(e164).country_code) not in allowed:
        raise IdentifierError("country_code", _l(
            "Text messages can only be sent to mobile numbers with the country code "
            "%(codes)s.", codes=", ".join("+" + code for code in allowed)))


#: The card number printed on the national social security card: a letter
#: and eight digits.
CARD_NUMBER_RE = re.compile(r"^[A-Z][0-9]{8}$")


def parse_card_number(raw: str) -> str:
    """Normalise a social security card number (``a00000001`` -> ``A00000001``).

    :raises IdentifierError: ``card_number`` if it is not a letter and eight digits.
    """
    number = normalize_identifier(raw)
    if not CARD_NUMBER_RE.match(number):
        raise IdentifierError("card_number", _l("A social security card number is a letter "
                                                "followed by eight digits."))
    return number


def is_card_number(text: str) -> bool:
    """True when ``text`` has the shape of a social security card number."""
    return bool(CARD_NUMBER_RE.match(normalize_identifier(text)))
