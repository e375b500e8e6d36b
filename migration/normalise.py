"""Legacy values made comparable before the fold matches people on them
(docs/migration.md, "Normalisation"), with the project's own identifier
rules (:mod:`idp.accounts.identifiers`).

Each function takes a raw source value and gives a :class:`Value`: the
normalised form the fold may match on, or the reason it may not, and the
raw value kept for the audit record. Nothing damaged is ever repaired: an
ID number that a spreadsheet turned into ``9.90101E+17`` or rounded to
``...000`` is rejected with its reason, never guessed back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from idp.accounts.identifiers import (
    IdentifierError,
    normalize_identifier,
    normalize_name,
    parse_mobile,
    parse_resident_id,
)
from migration.cells import NumberCell

#: Phone numbers legacy forms were filled with when nobody had one (case
#: M-MATCH-2), as national digits.
#: Any number of one digit repeated is one too.
PLACEHOLDER_PHONES = frozenset({"13800000000", "13800138000", "12345678901"})
#: A number written by a spreadsheet in scientific or decimal notation.
_NOTATION = re.compile(r"^[0-9]+([.,][0-9]*)?E[+]?[0-9]+$|^[0-9]+[.,][0-9]+$")

#: Why a value is not used: a placeholder, or damage a spreadsheet did.
PLACEHOLDER = "placeholder"
SPREADSHEET_DAMAGE = "spreadsheet_damage"


@dataclass(frozen=True)
class Value:
    """A legacy value after normalisation.

    :ivar raw: the value as the source held it (kept, encrypted, for the
        audit record), or None when the source had none.
    :ivar value: the normalised value, or None when missing or not usable.
    :ivar problem: why a value present is not used: :data:`PLACEHOLDER`,
        :data:`SPREADSHEET_DAMAGE`, or an
        :class:`~idp.accounts.identifiers.IdentifierError` code
        (``check_character``, ``length``, ``phone_number``...).
    :ivar alias: for an ID number upgraded from 15 digits, the 15-digit
        form, kept as an alias (case M-ID-2).
    """

    raw: str | None
    value: str | None = None
    problem: str | None = None
    alias: str | None = None

    @property
    def weak(self) -> bool:
        """Whether a match on this value is weaker evidence: an ID number
        upgraded from 15 digits had no check character to catch a typo."""
        return self.alias is not None


def _raw(raw: object) -> str | None:
    if raw is None:
        return None
    text = str(raw)
    return text if text.strip() else None


def _same_character(text: str) -> bool:
    return len(set(text)) == 1


def resident_id(raw: object, *, spreadsheet: bool = False) -> Value:
    """A resident ID number (GB 11643-1999), normalised: full-width to
    half-width, spaces and invisible characters removed, ``x`` upper-cased,
    15 digits upgraded to 18 (the 15 kept as :attr:`Value.alias`).

    :param spreadsheet: the value was read from an XLSX file: an 18-digit
        number ending in ``000`` is taken for Excel's rounding to 15
        significant digits and rejected even when its check character
        happens to fit (about 1 in 11 such numbers do; case M-ID-3). A
        cell that held a number (:class:`~migration.cells.NumberCell`) is
        rejected in any case.
    """
    text = _raw(raw)
    if text is None:
        return Value(None)
    number = normalize_identifier(text)
    # 000000, 111111111111111111...: what a form took when nobody had one.
    if _same_character(number):
        return Value(text, problem=PLACEHOLDER)
    if (_NOTATION.match(number) or isinstance(raw, NumberCell)
            or (spreadsheet and len(number) == 18 and number.endswith("000"))):
        return Value(text, problem=SPREADSHEET_DAMAGE)
    try:
        parsed = parse_resident_id(number)
    except IdentifierError as exc:
        return Value(text, problem=exc.code)
    return Value(text, parsed.number, alias=parsed.upgraded_from)


def phone(raw: object) -> Value:
    """A mobile number in E.164 (``+86 139-0000-0001`` ->
    ``+8613900000001``); placeholders (:data:`PLACEHOLDER_PHONES`, or one
    digit repeated) are never used (case M-MATCH-2)."""
    text = _raw(raw)
    if text is None:
        return Value(None)
    digits = re.sub(r"\D", "", normalize_identifier(text))
    national = digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
    if national in PLACEHOLDER_PHONES or (national and _same_character(national)):
        return Value(text, problem=PLACEHOLDER)
    try:
        return Value(text, parse_mobile(text))
    except IdentifierError as exc:
        return Value(text, problem=exc.code)


def name(raw: object) -> Value:
    """A person's name: NFKC, invisible characters removed, no space
    between Chinese characters (``张\\u200b三``, ``张\\u3000三`` -> ``张三``)."""
    text = _raw(raw)
    if text is None:
        return Value(None)
    normalised = normalize_name(text)
    return Value(text, normalised or None)
