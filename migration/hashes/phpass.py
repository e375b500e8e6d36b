"""The Portable PHP password hashing framework (phpass): WordPress before
6.8 and phpBB3, ``$P$`` and ``$H$``, through libpass."""

from __future__ import annotations

from collections.abc import Mapping

from passlib.hash import phpass

from migration.hashes.base import NamedScheme


class Phpass(NamedScheme):
    """``$P$`` (WordPress) and ``$H$`` (phpBB3) portable hashes: iterated
    MD5 with an 8-character salt."""

    name = "phpass"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        return phpass.identify(stored) and phpass.verify(secret, stored)
