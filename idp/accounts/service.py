"""Account rules: creation, lookup, password check and re-hash."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import idna
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from idp import unit_of_work
from idp.accounts import legacy, password_policy
from idp.accounts.identifiers import (
    IdentifierError,
    is_card_number,
    parse_card_number,
    parse_mobile,
    parse_resident_id,
)
from idp.accounts.links import LinkError, find_account
from idp.accounts.models import Account
from idp.audit.service import record
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import random_token

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
# The "valid e-mail address" of WHATWG HTML (input[type=email]): ASCII
# only, a local part of atext and dots, a domain of LDH labels; here with at
# least one dot in the domain (a mailbox on the Internet). Ownership is
# proven later by a verification mail.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+")
#: RFC 5321 §4.5.3.1: a forward path holds at most 256 octets, so an address 254.
EMAIL_MAX_LENGTH = 254


class AccountError(Exception):
    """An account could not be created or changed.

    :ivar field: the form field at fault (``username``, ``password``...).
    :ivar message: what is wrong, translated when rendered.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(str(message))
        self.field = field
        self.message = message

    @property
    def errors(self) -> list[tuple[str, Any]]:
        """Every ``(field, message)`` pair at fault: here the one."""
        return [(self.field, self.message)]


class AccountErrors(AccountError):
    """Several things are wrong at once (a registration form), so a form can
    show each on its field in one answer. As an :class:`AccountError` it
    names the first, for callers that show one.

    :param errors: the ``(field, message)`` pairs, in the order of the form;
        at least one.
    """

    def __init__(self, errors: list[tuple[str, Any]]) -> None:
        super().__init__(*errors[0])
        self._errors = list(errors)

    @property
    def errors(self) -> list[tuple[str, Any]]:
        """Every ``(field, message)`` pair at fault, in the order of the form."""
        return list(self._errors)


def normalize_email(raw: str) -> str:
    """The address as stored and compared: trimmed, the domain as lower-case
    ASCII, the local part as typed (it is the mailbox owner's to interpret,
    RFC 5321 §2.4). An internationalised domain is converted to its A-label
    form by IDNA 2008 with the UTS #46 mapping (``straße.example`` is
    ``xn--strae-oqa.example``, never ``strasse.example`` as IDNA 2003 and
    ``str.casefold`` have it), which is what browsers send from an
    input[type=email] and what every mail relay accepts. A local part
    outside ASCII (it would need SMTPUTF8, RFC 6531) is refused.

    :raises AccountError: on field ``email`` when it is not a valid address
        (:data:`EMAIL_RE` after the conversion) or is longer than
        :data:`EMAIL_MAX_LENGTH` characters.
    """
    address = unicodedata.normalize("NFC", raw or "").strip()
    local, _at, domain = address.rpartition("@")
    if len(address) <= EMAIL_MAX_LENGTH and domain and not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError:
            domain = ""
    address = f"{local}@{domain.lower()}"
    if len(address) > EMAIL_MAX_LENGTH or not EMAIL_RE.fullmatch(address):
        raise AccountError("email", _l("This is not a valid e-mail address."))
    return address


def normalize_username(raw: str) -> str:
    """NFKC-normalise, strip and case-fold a username so lookups ignore width and case."""
    return unicodedata.normalize("NFKC", raw).strip().casefold()


def check_password_policy(rt: Runtime, password: str, *, account: Account | None = None,
                          user_inputs: Iterable[str | None] = ()) -> None:
    """Refuse a new password that an attacker would guess early (NIST SP
    800-63B §5.1.1.2: length, and a blocklist of common, breached, expected
    and context-specific values; no composition rules).

    In order: the length (``passwords.min_length``, at most 1024); the
    account's own identifiers (a password equal to or built around the
    username, name, e-mail address, phone number, resident ID or card
    number); then the estimate of :mod:`idp.accounts.password_policy`
    (zxcvbn, with those identifiers as user inputs) against
    ``passwords.min_guesses_log10``.

    :param account: the account whose password it becomes, if it exists:
        its identifiers (decrypted here, never stored or logged) count.
    :param user_inputs: identifiers typed in the same form (username, name,
        phone number, e-mail) or otherwise known to the caller.
    :raises AccountError: on field ``password``, saying what is wrong and
        what to do.
    """
    settings = rt.settings["passwords"]
    if len(password) < settings["min_length"]:
        raise AccountError("password", _l("Password must be at least %(n)d characters.",
                                          n=settings["min_length"]))
    if len(password) > 1024:
        raise AccountError("password", _l("Password must be at most 1024 characters."))
    identifiers = list(user_inputs)
    if account is not None:
        identifiers += [account.username, account.name, account.verified_name, account.email,
                        phone_number(rt, account), resident_id(rt, account),
                        card_number(rt, account)]
    verdict = password_policy.judge(password, identifiers, settings["min_guesses_log10"])
    if verdict.identifier:
        raise AccountError("password", _l(
            "This password is made from your name, username, phone number, e-mail "
            "address, ID number or social security card number, which others know or can "
            "find out. Choose a passphrase of several words that have nothing to do with "
            "you."))
    if verdict.guessable:
        raise AccountError("password", _l(
            "This password is among the first that attackers try: a common password, a "
            "word with a few digits or symbols, a date, a keyboard pattern or a "
            "repetition. Choose a longer passphrase of several unrelated words."))


USERNAME_TAKEN = _l("This username is already taken.")


def validate_new_account(rt: Runtime, username: str, password: str, email: str | None, *,
                         name: str | None = None,
                         phone: str | None = None) -> tuple[str, str | None]:
    """Check what :func:`create_account` would refuse, without creating
    anything, and report every problem at once.

    :param name: the display name typed with it, and ``phone`` the mobile
        number, if any: the password must not be made from them either.
    :returns: the normalised ``(username, email)``.
    :raises AccountErrors: every problem found, in form order: the username
        invalid (or, when valid, taken), the password refused by
        :func:`check_password_policy`, the e-mail malformed.
    """
    errors: list[tuple[str, Any]] = []
    username = normalize_username(username)
    if not USERNAME_RE.match(username):
        errors.append(("username", _l(
            "Username must be 3-64 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit.")))
    elif username.isdigit() or is_resident_id(username):
        errors.append(("username", _l("A username cannot be only digits: it would be "
                                      "mistaken for an ID or phone number.")))
    elif is_card_number(username):
        errors.append(("username", _l("A username cannot be a letter followed by eight "
                                      "digits: it would be mistaken for a social "
                                      "security card number.")))
    elif find_by_username(username) is not None:
        errors.append(("username", USERNAME_TAKEN))
    email = (email or "").strip() or None
    try:
        check_password_policy(rt, password, user_inputs=(username, name, email, phone))
    except AccountError as exc:
        errors.append((exc.field, exc.message))
    if email is not None:
        try:
            email = normalize_email(email)
        except AccountError as exc:
            errors.append((exc.field, exc.message))
    if errors:
        raise AccountErrors(errors)
    return username, email


def create_account(
    rt: Runtime,
    username: str,
    password: str,
    *,
    name: str | None = None,
    email: str | None = None,
    verified_phone: str | None = None,
    ip: str | None = None,
    admin: bool = False,
) -> Account:
    """Create an account with an argon2id password hash (flushed, not
    committed: the caller commits it with whatever else the unit does, such
    as its identity links).

    :param username: login name; 3-64 of ``a-z 0-9 . _ -`` after case folding.
    :param verified_phone: a mobile number whose possession was just proven
        (SMS code), stored with the account in the same transaction.
    :param admin: an operator of the provider (must use TOTP).
    :returns: the new :class:`Account` with a fresh opaque ``subject``.
    :raises AccountError: if the username is invalid or taken, the password
        too weak, or the phone number held by another account (the first
        three together as :class:`AccountErrors`). When another request took
        the username or the number between the checks and the insert (the
        unique indexes decide), the unit of work is rolled back before the
        error is raised, since a failed flush leaves it unusable.
    """
    username, email = validate_new_account(rt, username, password, email, name=name,
                                           phone=verified_phone)
    account = Account(
        subject=random_token(16),
        username=username,
        password_hash=rt.hasher.hash(password),
        name=name or None,
        email=email,
        is_admin=admin,
    )
    if verified_phone:
        set_phone_number(rt, account, verified_phone, verified=True)
    db.session.add(account)
    try:
        db.session.flush()
    except IntegrityError:
        unit_of_work.rollback()
        if find_by_username(username) is not None:
            raise AccountErrors([("username", USERNAME_TAKEN)]) from None
        if verified_phone and phone_taken(rt, verified_phone):
            raise AccountError(_PHONE.field, _PHONE.taken) from None
        raise
    record("account.created", account_id=account.id, ip=ip, admin=admin)
    return account


#: The query of :func:`find_by_username`, built once: SQLAlchemy caches the
#: SQL, but building the statement again cost a third of the query's CPU
#: on every password login (issue 9).
_BY_USERNAME = select(Account).where(Account.username == bindparam("username"))


def find_by_username(username: str) -> Account | None:
    """Return the account whose (normalised) username matches, or None."""
    return db.session.scalar(_BY_USERNAME, {"username": normalize_username(username)})


def get_account(account_id: int) -> Account | None:
    """Return the account with internal id ``account_id``, or None."""
    return db.session.get(Account, account_id)


def verify_password(rt: Runtime, account: Account | None, password: str) -> bool:
    """Check ``password`` against ``account``'s hash, taking the same time
    when ``account`` is None (unknown identifier). Re-hashes (not
    committed: the login's unit of work commits) when the stored hash has
    outdated parameters. A migrated account without a password of its own
    is checked against its legacy hashes, and the one that matches becomes
    its argon2id password (:mod:`idp.accounts.legacy`).

    :returns: whether the password matched an existing account's.
    """
    ok, new_hash = rt.hasher.verify(password, account.password_hash if account else None)
    if account is not None and account.password_hash is None and not ok:
        # A migrated account before its first login: the dummy hash above
        # kept the time, and its departments' hashes decide.
        match = legacy.verify_legacy(rt, account, password)
        if match is None:
            return False
        legacy.upgrade(rt, account, password, match)
        return True
    if not ok or account is None:
        return False
    if new_hash:
        account.password_hash = new_hash
    return True


def check_password(rt: Runtime, identifier: str, password: str) -> tuple[Account | None, bool]:
    """Verify a password for the account named by ``identifier``: a resident
    ID number, a verified mobile number, or a username (see :func:`find_for_login`).

    :returns: ``(account, ok)``: the account named (None if unknown, so a
        failure can be audited against it) and whether the password matched.
    """
    account = find_for_login(rt, identifier)
    return account, verify_password(rt, account, password)


#: The lookups by a blind index (a login by phone, ID or card number), built
#: once like :data:`_BY_USERNAME`.
_BY_INDEX = {column: select(Account).where(getattr(Account, column) == bindparam("index"))
             for column in ("phone_number_index", "resident_id_index", "card_number_index")}


def _by_index(column, index: str) -> Account | None:
    return db.session.scalar(_BY_INDEX[column.key], {"index": index})


def is_resident_id(text: str) -> bool:
    """Whether ``text`` is a valid resident ID number (GB 11643-1999), 18
    characters or 15 digits."""
    try:
        parse_resident_id(text)
    except IdentifierError:
        return False
    return True


def find_for_login(rt: Runtime, identifier: str,
                   department: str | None = None) -> Account | None:
    """The account a login identifier names. A valid resident ID number (18
    characters, or 15 digits; it is also the social security number) and a
    social security card number are looked up by their blind indexes; a
    number that parses as a mobile number by the index of a *verified*
    phone (or of a migrated account's legacy phone before its first login,
    whose legacy password must then be given); anything else as a username.
    Registration refuses usernames of all digits or of the shape of an ID or
    card number, so no username is shadowed.

    :param department: the department of the client the login is for (its
        ``department``): a login name is first looked up among that
        department's legacy login names kept as aliases, because its users
        knew it there (docs/migration.md, "Usernames").
    """
    if department is not None:
        # Before the shapes below: a department's old login name may look
        # like a phone or ID number, and its users knew it there.
        aliased = _by_alias(rt, department, normalize_username(identifier))
        if aliased is not None:
            return aliased
    if is_resident_id(identifier):
        return find_by_resident_id(rt, identifier)
    if is_card_number(identifier):
        return find_by_card_number(rt, identifier)
    if any(c.isdigit() for c in identifier) and not any(c.isalpha() for c in identifier):
        try:
            parse_mobile(identifier)
        except IdentifierError:
            pass
        else:
            account = find_by_phone(rt, identifier)
            if account is None or not (account.phone_number_verified
                                       or legacy.has_legacy_credentials(account.id)):
                return None
            return account
    return find_by_username(identifier)


def _by_alias(rt: Runtime, department: str, name: str) -> Account | None:
    try:
        return find_account(rt, "alias", department, name)
    except LinkError:
        return None


@dataclass(frozen=True)
class _Identifier:
    """How one kind of personal identifier is kept on an account: its
    normalisation, the encrypted and blind-index columns, and the error
    when another account holds the value."""

    kind: str
    parse: Callable[[str], str]
    column: str
    field: str
    taken: Any


_PHONE = _Identifier("phone", parse_mobile, "phone_number", "phone",
                     _l("This number belongs to another account."))
_RESIDENT_ID = _Identifier("resident_id", lambda raw: parse_resident_id(raw).number,
                           "resident_id", "resident_id",
                           _l("This ID number belongs to another account."))
_CARD = _Identifier("card_number", parse_card_number, "card_number", "card_number",
                    _l("This card is already registered to another account."))


def _store(rt: Runtime, account: Account, ident: _Identifier, raw: str) -> str:
    value = ident.parse(raw)
    index = rt.pii.blind_index(ident.kind, value)
    holder = _by_index(getattr(Account, ident.column + "_index"), index)
    if holder is not None and holder.id != account.id:
        raise AccountError(ident.field, ident.taken)
    setattr(account, ident.column + "_enc", rt.pii.encrypt(ident.kind, value))
    setattr(account, ident.column + "_index", index)
    return value


def _read(rt: Runtime, account: Account, ident: _Identifier) -> str | None:
    stored = getattr(account, ident.column + "_enc")
    return rt.pii.decrypt(ident.kind, stored) if stored else None


def _find(rt: Runtime, ident: _Identifier, raw: str) -> Account | None:
    try:
        value = ident.parse(raw)
    except IdentifierError:
        return None
    return _by_index(getattr(Account, ident.column + "_index"),
                     rt.pii.blind_index(ident.kind, value))


def set_phone_number(rt: Runtime, account: Account, raw: str, verified: bool) -> str:
    """Store a mobile number encrypted, with its blind index (not committed).

    A ``verified`` number (its possession just proven) takes the number
    from an account that holds it unproven (a legacy department's claim,
    idp.accounts.legacy): possession outranks a record's word. That account
    loses the number, audited as ``phone.released``.

    :returns: the normalised E.164 number.
    :raises IdentifierError: if it is not a valid mobile number.
    :raises AccountError: if another account holds the number (proven, or
        unproven while this one is not proven either).
    """
    if verified:
        holder = find_by_phone(rt, raw)
        if holder is not None and holder.id != account.id and not holder.phone_number_verified:
            holder.phone_number_enc = None
            holder.phone_number_index = None
            db.session.flush()
            record("phone.released", account_id=holder.id, reason="proven_by_another")
    e164 = _store(rt, account, _PHONE, raw)
    account.phone_number_verified = verified
    return e164


def phone_taken(rt: Runtime, raw: str) -> bool:
    """Whether another account holds the mobile number ``raw`` proven: an
    unproven one (a legacy claim) gives way to whoever proves it
    (:func:`set_phone_number`)."""
    holder = find_by_phone(rt, raw)
    return holder is not None and holder.phone_number_verified


def phone_number(rt: Runtime, account: Account) -> str | None:
    """The account's mobile number in E.164, decrypted, or None."""
    return _read(rt, account, _PHONE)


def phone_for_scope(rt: Runtime, account: Account, scope: str) -> str | None:
    """The decrypted number when ``scope`` includes ``phone``, else None, so a
    number is decrypted only where it may be released."""
    return phone_number(rt, account) if "phone" in scope.split() else None


def find_by_phone(rt: Runtime, raw: str) -> Account | None:
    """The account holding the mobile number ``raw`` (any format), or None."""
    return _find(rt, _PHONE, raw)


def set_resident_id(rt: Runtime, account: Account, raw: str) -> str:
    """Store a resident ID number encrypted, with its blind index (not committed).

    :returns: the normalised 18-character number.
    :raises IdentifierError: if the number is invalid (GB 11643).
    :raises AccountError: if another account holds the number.
    """
    return _store(rt, account, _RESIDENT_ID, raw)


def resident_id(rt: Runtime, account: Account) -> str | None:
    """The account's resident ID number, decrypted, or None."""
    return _read(rt, account, _RESIDENT_ID)


def find_by_resident_id(rt: Runtime, raw: str) -> Account | None:
    """The account holding resident ID number ``raw`` (15 or 18 characters), or None."""
    return _find(rt, _RESIDENT_ID, raw)


def set_card_number(rt: Runtime, account: Account, raw: str) -> str:
    """Store a social security card number encrypted, with its blind index
    (not committed).

    :returns: the normalised card number.
    :raises IdentifierError: if it is not a card number.
    :raises AccountError: if another account holds the card.
    """
    return _store(rt, account, _CARD, raw)


def card_number(rt: Runtime, account: Account) -> str | None:
    """The account's social security card number, decrypted, or None."""
    return _read(rt, account, _CARD)


def find_by_card_number(rt: Runtime, raw: str) -> Account | None:
    """The account holding social security card ``raw``, or None."""
    return _find(rt, _CARD, raw)
