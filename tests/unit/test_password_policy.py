"""The password policy without Flask: length, the account's own identifiers,
and the guess estimate against its threshold (NIST SP 800-63B §5.1.1.2)."""

from __future__ import annotations

import random
import string
import sys
import threading
from types import SimpleNamespace

import pytest

from idp.accounts import password_policy
from idp.accounts.password_policy import identifier_forms, judge
from idp.accounts.service import AccountError, AccountErrors, check_password_policy

GUESSABLE = ("This password is among the first that attackers try: a common password, a "
             "word with a few digits or symbols, a date, a keyboard pattern or a repetition. "
             "Choose a longer passphrase of several unrelated words.")
IDENTIFIER = ("This password is made from your name, username, phone number, e-mail address, "
              "ID number or social security card number, which others know or can find out. "
              "Choose a passphrase of several words that have nothing to do with you.")
# A valid resident ID number (GB 11643 check character) of the sandbox's 李娜.
RESIDENT_ID = "310101198512120024"


def runtime(min_length: int = 8, min_guesses_log10: int = 8) -> SimpleNamespace:
    """What check_password_policy reads of the runtime when no account is given."""
    return SimpleNamespace(settings={"passwords": {"min_length": min_length,
                                                   "min_guesses_log10": min_guesses_log10}})


def refusal(password: str, rt=None, **kwargs) -> str | None:
    """The message refusing ``password`` (field ``password``), or None."""
    try:
        check_password_policy(rt or runtime(), password, **kwargs)
    except AccountError as exc:
        assert exc.field == "password"
        return str(exc.message)
    return None


@pytest.mark.parametrize("password", [
    "password", "12345678", "aaaaaaaa", "qwertyuiop", "password123", "P@ssw0rd",
    "iloveyou2024", "1qaz2wsx", "qq123456", "woaini1314", "abcd1234", "88888888",
    "passwordpasswordpassword", "19851212",
])
def test_what_attackers_try_first_is_refused(password):
    assert refusal(password) == GUESSABLE


@pytest.mark.parametrize("password", [
    "correct horse battery",  # the tests' password: a passphrase of three words
    "plum-blossom-river", "a new long password", "operator password",
    "Xq7vN3pL",  # random, exactly the minimum length: no composition rule
])
def test_passphrases_and_random_strings_pass(password):
    assert refusal(password, user_inputs=("alice", "Alice Wang", "13700660001")) is None


def test_random_twelve_character_strings_pass():
    draw = random.Random(20260706)
    alphabet = string.ascii_letters + string.digits + "!@#$%&*-_"
    for _ in range(50):
        password = "".join(draw.choice(alphabet) for _ in range(12))
        assert refusal(password) is None, password


@pytest.mark.parametrize("password,identifiers", [
    ("user3fa9c1", ("user3fa9c1",)),  # equal to the username
    ("User3fa9c1!", ("user3fa9c1",)),
    ("user3fa9c1-2024", ("user3fa9c1",)),
    ("1c9af3resu", ("user3fa9c1",)),  # reversed
    ("zhangwei1990", ("张伟",)),  # the name in Pinyin with a year
    ("weizhang88", ("张伟",)),
    ("Zhang.Wei.1990", ("张伟",)),
    ("lvbu2024!", ("吕布",)),  # ü typed as v
    ("13700660001", ("+86 137 0066 0001",)),  # the phone number, any format
    ("137-0066-0001x", ("13700660001",)),
    ("+8613700660001", ("13700660001",)),
    (RESIDENT_ID, (RESIDENT_ID,)),
    ("li120024na", (RESIDENT_ID,)),  # the last six of the ID number
    ("wangfang@1985", ("wang.fang@example.test",)),  # the e-mail's local part
    ("alice.wang.2024", ("Alice Wang",)),
])
def test_passwords_made_from_identifiers_are_refused(password, identifiers):
    assert refusal(password, user_inputs=identifiers) == IDENTIFIER
    # Without the identifiers some of them pass: the identifier decides.
    assert refusal(password) in (None, GUESSABLE)


def test_a_long_identifier_counts_anywhere_in_the_password():
    # Beyond the 32 estimated characters, the identifiers are still found.
    email = "a.very.long.address.of.someone@example.test"
    assert refusal(email + "!", user_inputs=(email,)) == IDENTIFIER
    # An identifier inside an otherwise strong passphrase is no reason to refuse.
    assert refusal("correct horse battery user3fa9c1", user_inputs=("user3fa9c1",)) is None


def test_the_threshold_is_a_setting():
    assert refusal("long password") == GUESSABLE  # two common words: about 10^7 guesses
    assert refusal("long password", runtime(min_guesses_log10=6)) is None
    # 0 turns the estimate off; a password that is only an identifier is still refused.
    assert refusal("password", runtime(min_guesses_log10=0)) is None
    assert refusal("user3fa9c1", runtime(min_guesses_log10=0),
                   user_inputs=("user3fa9c1",)) == IDENTIFIER


def test_length_comes_first():
    assert refusal("Xq7vN3p") == "Password must be at least 8 characters."
    assert refusal("Xq7vN3pLk9", runtime(min_length=12)) == \
        "Password must be at least 12 characters."
    assert refusal("x" * 1025) == "Password must be at most 1024 characters."


def test_only_the_first_characters_are_estimated():
    # zxcvbn refuses more than 72 characters by default and takes seconds
    # for long strings of l33t symbols: the estimate reads the first 32.
    crafted = "4@8({[<3691!|70$5+%2" * 51
    assert refusal(crafted[:1024]) is None
    strong = "correct horse battery staple " * 30
    assert refusal(strong[:1024]) is None
    # Guessable in its first 32 characters: refused whatever follows.
    assert refusal("a" * password_policy.ESTIMATE_MAX_CHARS + "Xq7vN3pLk9Ws") == GUESSABLE


def test_identifier_forms():
    forms = identifier_forms(["Alice.Wang", "张伟", "wang.fang@example.test",
                              "+86 137 0066 0001", RESIDENT_ID, None, ""])
    for form in ("alice.wang", "alicewang", "alice", "wang", "zhangwei", "weizhang", "zhang",
                 "wei", "wang.fang@example.test", "wang.fang", "wangfang", "8613700660001",
                 "13700660001", RESIDENT_ID, "19851212", "120024"):
        assert form in forms, form
    # An e-mail's domain is not the person's: "example" is no identifier.
    assert "example" not in forms and "test" not in forms
    # Every reading of a character that has several (曾 is zeng as a surname).
    assert {"zengfan", "cengfan"} <= set(identifier_forms(["曾凡"]))


def test_concurrent_checks_keep_their_own_identifiers():
    # zxcvbn keeps user inputs in a module global: without the lock, a check
    # could match another request's identifiers instead of its own.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    failures = []

    def check(identifier: str, rounds: int) -> None:
        for _ in range(rounds):
            # Reversed, so only the estimator (not the plain search) finds it.
            if not judge(identifier[::-1] + "1990", [identifier], 8).identifier:
                failures.append(identifier)

    try:
        threads = [threading.Thread(target=check, args=(f"person{n:04d}x", 30))
                   for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


def test_account_errors_carry_every_error():
    errors = AccountErrors([("username", "taken"), ("password", "weak"), ("email", "bad")])
    assert isinstance(errors, AccountError)
    assert (errors.field, errors.message) == ("username", "taken")
    assert errors.errors == [("username", "taken"), ("password", "weak"), ("email", "bad")]
    assert AccountError("password", "weak").errors == [("password", "weak")]


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize("password", ["password", "password123", "woaini1314", "1qaz2wsx",
                                      "P@ssw0rd"])
def test_full_width_forms_are_judged_as_what_they_stand_for(password):
    """Regression (issue 7 review, finding 15): the estimate read the raw
    text, where full-width letters (a Chinese input method's full-width
    mode) are no words, so the commonest passwords passed. NFKC first."""
    assert refusal(_full_width(password)) == GUESSABLE


@pytest.mark.parametrize("mark", ["\u200b", "\u00ad", "\ufeff", "\u2060"])
def test_format_characters_are_judged_as_nothing(mark):
    """NIST SP 800-63B §5.1.1.2: a format character (Unicode category Cf),
    which nobody sees, made ``password1`` pass as a random symbol."""
    assert password_policy.skeleton(f"pass{mark}word1") == "password1"
    assert refusal(f"pass{mark}word1") == GUESSABLE


def test_combining_marks_are_dropped_for_the_check():
    """Tone marks (category Mn once decomposed) are no disguise for the
    Pinyin of a name; width and case fold as before."""
    assert password_policy.skeleton("chénjìng lǜ") == "chenjing lu"
    assert password_policy.skeleton("ＣＨÉＮ", fold=True) == "chen"
    # Folding can bring a mark back (İ is i and U+0307): it goes too.
    assert password_policy.skeleton("İ", fold=True) == "i"
    assert refusal("chénjìng68", user_inputs=["陈静"]) == IDENTIFIER
    assert refusal("plum blossom rivér") is None
