"""bcrypt as PHP (``password_hash``, ``$2y$``) and Spring Security
(``BCryptPasswordEncoder``, ``$2a$``) stored it, through libpass."""

from __future__ import annotations

import re
from collections.abc import Mapping

from passlib.hash import bcrypt

from migration.hashes.base import NamedScheme

#: bcrypt reads at most this many bytes of a password; the old systems'
#: libraries dropped the rest without a word (case M-PW-1).
BCRYPT_MAX_BYTES = 72
#: Highest cost a stored bcrypt value may ask for (2^13 rounds, about half
#: a second): a row asking more is no match, never a login that hangs.
MAX_COST = 13
_COST = re.compile(r"\$2[abxy]?\$(\d\d)\$")


def cost_allowed(stored: str) -> bool:
    """Whether a bcrypt value's cost is at most :data:`MAX_COST`."""
    match = _COST.match(stored)
    return match is not None and int(match[1]) <= MAX_COST


class Bcrypt(NamedScheme):
    """``$2a$``, ``$2b$`` and ``$2y$`` hashes. A password longer than 72
    bytes verifies as the old system verified it, by its first 72 bytes
    (today's ``bcrypt`` refuses such a password rather than cut it; new
    hashes are argon2id and never truncate)."""

    name = "bcrypt"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        return (bcrypt.identify(stored) and cost_allowed(stored)
                and bcrypt.verify(secret[:BCRYPT_MAX_BYTES], stored))
