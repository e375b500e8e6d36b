"""The Unix ``crypt`` formats of old Linux-hosted systems, through libpass."""

from __future__ import annotations

import re
from collections.abc import Mapping

from passlib.hash import md5_crypt, sha512_crypt

from migration.hashes.base import NamedScheme

#: Most SHA-512-crypt rounds a stored value may ask for (glibc's default is
#: 5,000); more is no match, never a login that hangs.
MAX_ROUNDS = 200_000


class Md5Crypt(NamedScheme):
    """``$1$salt$hash``: FreeBSD MD5-crypt (glibc, ``openssl passwd -1``)."""

    name = "md5_crypt"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        return md5_crypt.identify(stored) and md5_crypt.verify(secret, stored)


class Sha512Crypt(NamedScheme):
    """``$6$[rounds=N$]salt$hash``: SHA-512-crypt (glibc, ``openssl passwd -6``)."""

    name = "sha512_crypt"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        rounds = re.match(r"\$6\$rounds=(\d{1,10})\$", stored)
        if rounds is not None and int(rounds[1]) > MAX_ROUNDS:
            return False
        return sha512_crypt.identify(stored) and sha512_crypt.verify(secret, stored)
