"""Named legacy password schemes: one small class each, registered by name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

from migration.hashes.errors import SchemeError

#: Longest key a stored PBKDF2 or scrypt value may ask to derive, bytes:
#: every format keeps 16 to 64; a longer one multiplies the work.
MAX_DERIVED = 64
#: Encodings tried, in order, for a password that is not ASCII (M-PW-5).
PASSWORD_ENCODINGS = ("utf-8", "gbk")

#: Scheme name -> its class, filled by :class:`NamedScheme` subclasses.
NAMED: dict[str, type[NamedScheme]] = {}


def encodings(password: str) -> Iterator[tuple[str, bytes]]:
    """``(encoding, bytes)`` of ``password`` as legacy systems may have
    hashed it: UTF-8, then GBK for text that is not ASCII; never
    normalised first (M-PW-4). An encoding that cannot hold the text is
    skipped."""
    for encoding in PASSWORD_ENCODINGS if not password.isascii() else PASSWORD_ENCODINGS[:1]:
        try:
            yield encoding, password.encode(encoding)
        except UnicodeEncodeError:
            continue


class NamedScheme:
    """A legacy scheme with a name (``scheme = "bcrypt"`` in a mapping).

    Subclasses set :attr:`name` and implement :meth:`matches`; they are
    registered in :data:`NAMED` when defined.

    :cvar name: the name mappings use.
    :cvar fields: the row values the scheme reads beside the password.
    """

    name: ClassVar[str] = ""
    fields: ClassVar[frozenset[str]] = frozenset({"password"})

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            NAMED[cls.name] = cls

    def verify(self, password: str, stored: str, values: Mapping[str, str | None]) -> str | None:
        """Whether ``password`` is the one ``stored`` was made from.

        :param values: the row's ``salt``, ``username`` and ``pepper``.
        :returns: the encoding that matched, or None.
        :raises SchemeError: a value the scheme reads is missing.
        """
        for name in self.fields - {"password"}:
            if values.get(name) is None:
                raise SchemeError(f"the scheme {self.name} reads {name}, "
                                  "which this row does not have")
        stored = stored.strip()
        for encoding, secret in encodings(password):
            try:
                matched = self.matches(secret, stored, values)
            except ValueError:
                # A stored value the format's library cannot read (a
                # damaged row) is no match.
                return None
            if matched:
                return encoding
        return None

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        """Whether the password's bytes ``secret`` give ``stored``; a stored
        value not in the scheme's format is no match."""
        raise NotImplementedError
