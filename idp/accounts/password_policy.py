"""How guessable a new password is: the blocklist of NIST SP 800-63B
§5.1.1.2 ("commonly-used, expected, or compromised" values, dictionary words,
repetitive or sequential characters, context-specific words such as the
username) as an estimate of the guesses an attacker needs.

The estimate is zxcvbn's (Dropbox): it tries its frequency lists of breached
passwords, names and words, with l33t substitutions, reversals, dates,
keyboard patterns, sequences and repetitions, and the account's own
identifiers as one more list. Pure functions of their arguments: no Flask,
no database.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from zxcvbn import zxcvbn

from idp.accounts.identifiers import IdentifierError, parse_mobile, parse_resident_id

#: Only the first 32 characters are estimated. zxcvbn's matching costs the
#: length squared times the l33t readings it tries (up to 736 when every
#: substitution symbol occurs): on this project's 2-core machines a crafted
#: password of substitution symbols takes 3.6 s at 100 characters and 0.56 s
#: at 32, in a request thread holding the lock below, while 32 characters of
#: ordinary text take about 10 ms. Cutting never lets a weak password through
#: (an attacker must guess the first 32 characters too); it can only refuse a
#: password whose first 32 characters are guessable on their own. The checks
#: of the account's identifiers read the whole password.
ESTIMATE_MAX_CHARS = 32
#: Identifiers at least this long are looked for in the whole password.
_MIN_CONTAINED = 4
#: A match of an identifier this long decides that a refused password is
#: refused because of the identifier (shorter ones, such as a one-syllable
#: given name, occur by chance).
_MIN_ATTRIBUTED = 3
#: At most this many romanisations of one name (several readings per
#: character multiply).
_MAX_READINGS = 16
# zxcvbn keeps the user inputs in a module-level dictionary that each call
# replaces before matching: two threads at once would match each other's
# identifiers.
_ZXCVBN_LOCK = threading.Lock()
_SEPARATORS = re.compile(r"[\s._\-·・@+()/]+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_PHONE_LIKE = re.compile(r"^\+?[\d\s()\-]{7,}$")
#: Categories a skeleton leaves out: format characters and combining marks.
_INVISIBLE = frozenset({"Cf", "Mn"})


@dataclass(frozen=True)
class Verdict:
    """What :func:`judge` found.

    :ivar guessable: the password falls within the guess budget.
    :ivar identifier: it does so because it is built from the account's
        own identifiers (equal to one, or one with guessable additions).
    """

    guessable: bool
    identifier: bool


def skeleton(text: str, *, fold: bool = False) -> str:
    """What ``text`` looks like to a person guessing it (NIST SP 800-63B
    §5.1.1.2: the password is normalised before it is compared with the
    blocklist): its compatibility forms as what they stand for (NFKC:
    full-width ``ｐａｓｓ`` is ``pass``), without format characters
    (category Cf: U+200B ZERO WIDTH SPACE, U+00AD SOFT HYPHEN, U+FEFF,
    U+2060 WORD JOINER, which nobody sees and a list of guesses leaves out)
    and without combining marks (NFKD, category Mn: ``chénjìng`` with
    Pinyin's tone marks is ``chenjing``). Recomposed (NFC), so Hangul
    syllables stay whole. Only the strength check reads it: the password
    is stored, and checked at login, as typed.

    :param fold: case-folded too (for comparisons with identifiers).
    """
    text = unicodedata.normalize("NFKD", text)
    if fold:
        # After the decomposition, which turns ℌ into H; folding can bring a
        # mark back (İ folds to i and U+0307), so decompose again.
        text = unicodedata.normalize("NFKD", text.casefold())
    return unicodedata.normalize("NFC", "".join(
        c for c in text if unicodedata.category(c) not in _INVISIBLE))


def _fold(text: str) -> str:
    return skeleton(text, fold=True).strip()


def _romanisations(name: str) -> list[str]:
    """Hanyu Pinyin spellings of the Chinese characters of ``name``: whole,
    given name first, surname and given name alone, initials; every reading
    of a character with several (a surname is often read differently from
    the word), up to :data:`_MAX_READINGS` combinations."""
    han = "".join(_HAN.findall(name))
    if not han:
        return []
    # pypinyin's phrase dictionary (for words, not names) costs about 45 MB;
    # a name is read character by character, with all its readings.
    os.environ.setdefault("PYPINYIN_NO_PHRASES", "1")
    from pypinyin import Style, pinyin

    readings = pinyin(han, style=Style.NORMAL, heteronym=True, errors="ignore")
    # Style.NORMAL writes ü as v (lv); people also type u (lu).
    readings = [sorted({r for reading in each for r in (reading, reading.replace("v", "u"))})
                for each in readings if each]
    forms = []
    for syllables in itertools.islice(itertools.product(*readings), _MAX_READINGS):
        surname, given = syllables[0], "".join(syllables[1:])
        forms += ["".join(syllables), given + surname, surname, given,
                  "".join(s[0] for s in syllables), surname + "".join(s[0] for s in syllables[1:])]
    return forms


def _forms_of(value: str) -> list[str]:
    if "@" in value:
        local = value.split("@", 1)[0]
        return [value, local, _SEPARATORS.sub("", local), *_SEPARATORS.split(local)]
    try:
        number = parse_resident_id(value).number.casefold()
    except IdentifierError:
        pass
    else:
        # The birth date and the last six characters are passwords of choice.
        return [number, number[6:14], number[-6:]]
    if _PHONE_LIKE.match(value):
        try:
            e164 = parse_mobile(value)
        except IdentifierError:
            return [re.sub(r"\D", "", value)]
        return [e164[1:], str(phonenumbers.parse(e164).national_number)]
    return [value, _SEPARATORS.sub("", value), *_SEPARATORS.split(value),
            *_romanisations(value)]


def identifier_forms(values: Iterable[str | None]) -> list[str]:
    """The forms in which a person's identifiers turn up in passwords, folded
    (the case-folded :func:`skeleton`), without duplicates, most telling first.

    :param values: usernames, names, e-mail addresses, phone numbers (any
        format), resident ID numbers, card numbers; None and empty are skipped.
    :returns: each value; a name or username also without separators, its
        words, and for Chinese characters their Pinyin; an e-mail's local
        part; a mobile number's national and international digits; an ID
        number's birth date and last six characters.
    """
    forms: list[str] = []
    for raw in values:
        value = _fold(raw or "")
        if value:
            forms += _forms_of(value)
    return list(dict.fromkeys(f for f in forms if len(f) >= 2))


def _estimate(password: str, forms: list[str]) -> dict:
    text = password[:ESTIMATE_MAX_CHARS]
    with _ZXCVBN_LOCK:
        return zxcvbn(text, user_inputs=forms, max_length=ESTIMATE_MAX_CHARS)


def _uses_identifier(sequence: list[dict]) -> bool:
    for match in sequence:
        if (match.get("dictionary_name") == "user_inputs"
                and len(match["token"]) >= _MIN_ATTRIBUTED):
            return True
        if match["pattern"] == "repeat" and _uses_identifier(match["base_matches"]):
            return True
    return False


def judge(password: str, identifiers: Iterable[str | None],
          min_guesses_log10: float) -> Verdict:
    """Judge a new password against a guess budget, the account's
    identifiers first, then the whole estimate.

    The password is built from an identifier when it contains one (of
    :data:`_MIN_CONTAINED` characters or more, anywhere in the password) and
    what remains around it is guessable by itself; or when the estimator's
    cheapest explanation of a guessable password uses an identifier (also
    reversed, with l33t substitutions or repeated).

    :param password: the new password as typed (judged by its
        :func:`skeleton`, so full-width and other compatibility forms count
        as what they stand for, and invisible characters and accents as
        nothing).
    :param identifiers: the account's identifiers as for :func:`identifier_forms`.
    :param min_guesses_log10: the least number of guesses (a power of ten)
        that a password must need; NIST's intent is that it stops the
        guesses attackers try first, not that it forces composition.
    :returns: a :class:`Verdict`.
    """
    forms = identifier_forms(identifiers)
    longest_first = sorted((f for f in forms if len(f) >= _MIN_CONTAINED), key=len, reverse=True)
    folded = _fold(password)
    # Also without separators: 139-0000-0001 is the phone number too.
    for text in dict.fromkeys((folded, _SEPARATORS.sub("", folded))):
        rest = text
        for form in longest_first:
            rest = rest.replace(form, "")
        if rest != text and (not rest.strip() or
                             _estimate(rest, forms)["guesses_log10"] < min_guesses_log10):
            return Verdict(True, True)
    # Estimated on the skeleton: an input method in full-width mode types
    # ``password`` as ``ｐａｓｓｗｏｒｄ``, and ``pass\u200bword`` shows as
    # ``password``, both of which zxcvbn would read as random symbols.
    result = _estimate(skeleton(password), forms)
    guessable = result["guesses_log10"] < min_guesses_log10
    return Verdict(guessable, guessable and _uses_identifier(result["sequence"]))
