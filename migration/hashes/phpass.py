"""The Portable PHP password hashing framework (phpass): WordPress before
6.8 and phpBB3, ``$P$`` and ``$H$``, through libpass."""

from __future__ import annotations

from collections.abc import Mapping

from passlib.hash import phpass

from migration.hashes.base import NamedScheme

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Highest log2 of the iterations a stored value may ask for.
MAX_LOG2_ROUNDS = 18


class Phpass(NamedScheme):
    """``$P$`` (WordPress) and ``$H$`` (phpBB3) portable hashes: iterated
    MD5 with an 8-character salt."""

    name = "phpass"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        # The fourth character gives log2 of the MD5 iterations (WordPress:
        # 13); more than 2^18 is no match, never a login that hangs.
        return (phpass.identify(stored) and len(stored) > 3
                and _ITOA64.find(stored[3]) <= MAX_LOG2_ROUNDS
                and phpass.verify(secret, stored))
