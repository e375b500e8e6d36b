"""Identity links: the identifiers an account can hold many of, each scoped
by the party that issued it (DESIGN.md vocabulary, "legacy link").

======================  ==========================  ==============================
kind                    issuer                      value
======================  ==========================  ==============================
``legacy``              the department's code       its legacy user id
``alias``               the department's code       a legacy login name another
                                                    person holds as their
                                                    username, case-folded: it
                                                    works on that department's
                                                    clients only
``certificate``         the certificate authority   the certificate's serial number
                                                    (unique per CA, RFC 5280 §4.1.2.2)
``federation``          the upstream issuer URL     the upstream ``sub`` (unique per
                                                    issuer, OIDC Core §2 and §5.7)
======================  ==========================  ==============================

A value is stored encrypted with a blind index (idp.accounts.pii), both bound
to its kind and issuer: equal values of two issuers are not linkable through
the index, and a stored value cannot be moved to another issuer's row. A
value belongs to at most one account (unique on kind, issuer and index).

Values are taken exactly as given: the caller (the legacy fold's mapping, the
certificate or federation login) normalises them by its source's rules, and
a value with surrounding white space or control characters is refused, never
repaired.

These functions flush and never commit: the outermost caller commits or rolls
back, so an account, its links and its audit events are one transaction.
They do not audit; the operation that links (a fold batch, a certificate
binding) records its own event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from idp.accounts.models import Account, IdentityLink
from idp.extensions import db
from idp.runtime import Runtime
from idp.timeutil import utcnow

KINDS = ("legacy", "alias", "certificate", "federation")
#: Longest issuer and value, characters. An upstream ``sub`` may have 255
#: ASCII characters (OIDC Core §2); the column holds 255.
MAX_LENGTH = 255
#: A department's code (``[department] code`` of a migration mapping).
DEPARTMENT_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


class LinkError(ValueError):
    """An identity link cannot be made or looked up.

    :ivar code: machine-readable reason: ``kind`` (not one of :data:`KINDS`),
        ``issuer`` (malformed for its kind), ``value`` (empty, too long,
        surrounding white space or control characters), ``taken`` (another
        account holds the value; the error never says which).
    :ivar message: human-readable reason, translated when rendered.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message


@dataclass(frozen=True)
class LinkedIdentifier:
    """One link of an account, decrypted, as :func:`links_of` lists it.

    :ivar kind: one of :data:`KINDS`.
    :ivar issuer: department code, CA or upstream issuer.
    :ivar value: legacy user id, certificate serial or upstream ``sub``.
    :ivar created_at: when the link was made, naive UTC.
    :ivar last_used_at: when a login last went through it (:func:`touch`),
        naive UTC, or None.
    """

    kind: str
    issuer: str
    value: str
    created_at: datetime
    last_used_at: datetime | None


def _is_plain_text(text: str) -> bool:
    return 0 < len(text) <= MAX_LENGTH and text == text.strip() and text.isprintable()


def _is_issuer_url(text: str) -> bool:
    # OpenID Connect Discovery 1.0 §2 and RFC 8414 §2: an https URL with a
    # host and no query or fragment, compared as a string.
    if len(text) > MAX_LENGTH or not text.isascii() or any(ch.isspace() for ch in text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return (parts.scheme == "https" and bool(parts.hostname) and parts.username is None
            and "?" not in text and "#" not in text)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise LinkError("kind", _l("An identity link is of kind legacy, alias, certificate "
                                   "or federation."))


def _check_issuer(kind: str, issuer: str) -> None:
    _check_kind(kind)
    if kind in ("legacy", "alias"):
        valid = DEPARTMENT_CODE_RE.fullmatch(issuer) is not None
        message = _l("A department code has 1 to 32 letters, digits, dots, hyphens or "
                     "underscores.")
    elif kind == "federation":
        valid = _is_issuer_url(issuer)
        message = _l("An upstream issuer is an https URL without query or fragment.")
    else:
        valid = _is_plain_text(issuer)
        message = _l("A certificate authority is named by 1 to 255 printable characters, "
                     "without white space around them.")
    if not valid:
        raise LinkError("issuer", message)


def _check(kind: str, issuer: str, value: str) -> None:
    _check_issuer(kind, issuer)
    if not _is_plain_text(value):
        raise LinkError("value", _l("A linked identifier has 1 to 255 printable characters, "
                                    "without white space around them."))


def _pii_kind(kind: str, issuer: str) -> str:
    # The kind of idp.accounts.pii: associated data of the encryption and
    # domain of the blind index. The kind contains no colon, so the string
    # names one (kind, issuer) pair.
    return f"link:{kind}:{issuer}"


def value_index(rt: Runtime, kind: str, issuer: str, value: str) -> str:
    """The blind index a link of ``value`` under ``kind`` and ``issuer``
    has, for lookups of many values at once (the legacy fold's chunks).

    :raises LinkError: ``kind``, ``issuer`` or ``value`` is malformed.
    """
    _check(kind, issuer, value)
    return rt.pii.blind_index(_pii_kind(kind, issuer), value)


def new_link_values(rt: Runtime, account_id: int, kind: str, issuer: str,
                    value: str) -> dict:
    """The column values of a new link row, for a bulk insert that checks
    uniqueness itself (the unique index still decides): ``account_id``,
    ``kind``, ``issuer``, ``value_enc``, ``value_index``.

    :raises LinkError: ``kind``, ``issuer`` or ``value`` is malformed.
    """
    index = value_index(rt, kind, issuer, value)
    return {"account_id": account_id, "kind": kind, "issuer": issuer,
            "value_enc": rt.pii.encrypt(_pii_kind(kind, issuer), value), "value_index": index}


def find_link(rt: Runtime, kind: str, issuer: str, value: str) -> IdentityLink | None:
    """The link of ``value`` under ``kind`` and ``issuer``, or None. A lookup
    only: it writes nothing (see :func:`touch`).

    :raises LinkError: ``kind``, ``issuer`` or ``value`` is malformed.
    """
    index = value_index(rt, kind, issuer, value)
    return db.session.scalar(select(IdentityLink).where(
        IdentityLink.kind == kind, IdentityLink.issuer == issuer,
        IdentityLink.value_index == index))


def find_account(rt: Runtime, kind: str, issuer: str, value: str) -> Account | None:
    """The account linked to ``value`` under ``kind`` and ``issuer``, or None.

    A lookup only: it does not mark the link used, because not every lookup
    is a login (an operator's query, the fold's matching, a login that then
    fails). A login that went through the link calls :func:`touch`.

    :raises LinkError: ``kind``, ``issuer`` or ``value`` is malformed.
    """
    link = find_link(rt, kind, issuer, value)
    return db.session.get(Account, link.account_id) if link is not None else None


def link(rt: Runtime, account: Account, kind: str, issuer: str, value: str) -> IdentityLink:
    """Link ``value`` under ``kind`` and ``issuer`` to ``account`` (flushed,
    not committed). Linking a value the account holds already returns its
    link unchanged, so a fold run twice writes nothing new.

    :param account: a flushed account (it has an ``id``).
    :returns: the account's link.
    :raises LinkError: ``kind``, ``issuer`` or ``value`` is malformed, or
        ``taken``: another account holds the value (also when a concurrent
        transaction linked it first; the session must then be rolled back,
        which the outermost caller does).
    """
    existing = find_link(rt, kind, issuer, value)
    if existing is not None:
        if existing.account_id != account.id:
            raise LinkError("taken", _l("This identifier is linked to another account."))
        return existing
    pii_kind = _pii_kind(kind, issuer)
    item = IdentityLink(account_id=account.id, kind=kind, issuer=issuer,
                        value_enc=rt.pii.encrypt(pii_kind, value),
                        value_index=rt.pii.blind_index(pii_kind, value))
    db.session.add(item)
    try:
        db.session.flush()
    except IntegrityError:
        # Everything pending before this link was flushed by find_link's
        # query, so the conflict is this row's: the unique index.
        raise LinkError("taken", _l("This identifier is linked to another account.")) \
            from None
    return item


def touch(link: IdentityLink, at: datetime | None = None) -> None:
    """Record that a login went through ``link`` (not committed: the login's
    unit of work writes it).

    :param at: when, naive UTC; now by default.
    """
    link.last_used_at = at or utcnow()


def unlink(rt: Runtime, account: Account, kind: str, issuer: str, value: str) -> bool:
    """Remove the account's link of ``value`` under ``kind`` and ``issuer``
    (flushed, not committed).

    :returns: True if the account held the link and it was removed; False
        if it did not, also when another account holds the value (which is
        neither removed nor revealed).
    :raises LinkError: ``kind``, ``issuer`` or ``value`` is malformed.
    """
    item = find_link(rt, kind, issuer, value)
    if item is None or item.account_id != account.id:
        return False
    db.session.delete(item)
    db.session.flush()
    return True


def links_of(rt: Runtime, account: Account, kind: str | None = None,
             issuer: str | None = None) -> list[LinkedIdentifier]:
    """The account's links, decrypted, by kind, issuer and age.

    :param kind: only links of this kind.
    :param issuer: only links of this issuer (checked for its kind when
        ``kind`` is given).
    :raises LinkError: ``kind`` or ``issuer`` is malformed.
    :raises idp.accounts.pii.PiiError: a stored value cannot be decrypted
        (its key is no longer configured, or it was altered).
    """
    query = select(IdentityLink).where(IdentityLink.account_id == account.id)
    if kind is not None:
        if issuer is not None:
            _check_issuer(kind, issuer)
        else:
            _check_kind(kind)
        query = query.where(IdentityLink.kind == kind)
    if issuer is not None:
        query = query.where(IdentityLink.issuer == issuer)
    rows = db.session.scalars(query.order_by(IdentityLink.kind, IdentityLink.issuer,
                                             IdentityLink.created_at, IdentityLink.id))
    return [LinkedIdentifier(kind=row.kind, issuer=row.issuer,
                             value=rt.pii.decrypt(_pii_kind(row.kind, row.issuer),
                                                  row.value_enc),
                             created_at=row.created_at, last_used_at=row.last_used_at)
            for row in rows]
