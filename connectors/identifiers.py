"""The arithmetic of the identifiers the registries key on, and their masks:
resident ID numbers (GB 11643-1999), Unified Social Credit Codes
(GB 32100-2015), mobile numbers (E.164) and social security card numbers.

Shared by the connectors (the HTTP client masks identifiers in its logs,
the sandbox generates valid ones) and the provider (``idp.accounts.identifiers``
parses and validates with these check characters; pages, exports and logs
mask with these functions). Pure functions without Flask or I/O, so that
``connectors`` needs nothing from ``idp``.
"""

from __future__ import annotations

import re

import phonenumbers

#: GB 11643-1999 §5.2: weights W_i = 2^(i-1) mod 11 for positions 18..2.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
#: Check character for each value of the weighted sum mod 11 (MOD 11-2).
ID_CHECK = "10X98765432"
#: GB 32100-2015 §4.2: the 31 characters of a credit code (no I, O, Z, S, V).
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: GB 32100-2015 §5.3: weights W_i = 3^(i-1) mod 31 for positions 1..17.
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def id_check_character(first17: str) -> str:
    """The MOD 11-2 check character for 17 digits (GB 11643-1999 §5.2).

    :param first17: the first 17 characters of a resident ID number, digits only.
    :returns: one of ``0123456789X``.
    :raises ValueError: a character is not a digit.
    """
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def uscc_check_character(first17: str) -> str:
    """The check character of a credit code (GB 32100-2015 §5.3).

    :param first17: the first 17 characters of the code, from :data:`USCC_ALPHABET`.
    :returns: one character of :data:`USCC_ALPHABET`.
    :raises ValueError: a character is not in the alphabet.
    """
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def mask_card_number(number: str) -> str:
    """Show the letter and the last three digits (``A*****001``)."""
    if len(number) <= 4:
        return "*" * len(number)
    return number[0] + "*" * (len(number) - 4) + number[-3:]


def mask_resident_id(number: str) -> str:
    """Show the first four and last four characters (``3401**********123X``)."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def mask_phone(e164: str) -> str:
    """Show the first three and last four digits of the national number
    (``+8613900000001`` -> ``139****0001``)."""
    try:
        national = str(phonenumbers.parse(e164).national_number)
    except phonenumbers.NumberParseException:
        national = re.sub(r"\D", "", e164)
    if len(national) <= 7:
        return "*" * len(national)
    return national[:3] + "*" * (len(national) - 7) + national[-4:]
