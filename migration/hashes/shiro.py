"""Apache Shiro's ``SimpleHash`` and its ``$shiro1$`` crypt format."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from migration.hashes.base import NamedScheme
from migration.hashes.errors import SchemeError

#: Shiro's algorithm names (Java's MessageDigest names) -> hashlib's.
ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA1": "sha1", "SHA-256": "sha256",
              "SHA256": "sha256", "SHA-512": "sha512", "SHA512": "sha512"}
#: Most iterations a stored value or a mapping may ask for.
MAX_ITERATIONS = 1_000_000


def simple_hash(algorithm: str, secret: bytes, salt: bytes, iterations: int) -> bytes:
    """``new SimpleHash(algorithm, secret, salt, iterations).getBytes()``:
    the digest of the salt then the secret, then the digest of that
    digest, ``iterations`` times in all."""
    digest = hashlib.new(algorithm, salt + secret).digest()
    for _ in range(iterations - 1):
        digest = hashlib.new(algorithm, digest).digest()
    return digest


class Shiro(NamedScheme):
    """Shiro ``SimpleHash`` with the row's salt (its UTF-8 bytes, as
    ``ByteSource.Util.bytes(salt)``), as hex (``toHex()``, any case) or
    Base64 (``toBase64()``): ``shiro(MD5, 2)`` names the algorithm and the
    iterations. Plain ``shiro`` reads the self-describing
    ``$shiro1$ALGORITHM$ITERATIONS$base64 salt$base64 hash`` of Shiro's
    ``DefaultPasswordService`` (no salt column needed).

    :raises SchemeError: an unknown algorithm or an iteration count out of
        range in the mapping.
    """

    name = "shiro"

    def __init__(self, algorithm: str | None = None, iterations: str | None = None) -> None:
        self._algorithm = self._iterations = None
        if algorithm is not None:
            self._algorithm = ALGORITHMS.get(algorithm.strip().upper())
            count = (iterations or "1").strip()
            if self._algorithm is None:
                raise SchemeError(f"shiro: unknown algorithm {algorithm!r} "
                                  f"(one of {', '.join(ALGORITHMS)})")
            if not count.isdigit() or not 1 <= int(count) <= MAX_ITERATIONS:
                raise SchemeError(f"shiro: iterations must be 1 to {MAX_ITERATIONS}")
            self._iterations = int(count)
            self.fields = frozenset({"password", "salt"})

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        if stored.startswith("$shiro1$"):
            return _shiro1(secret, stored)
        if self._algorithm is None:
            return False
        digest = simple_hash(self._algorithm, secret, values["salt"].encode("utf-8"),
                             self._iterations)
        return (hmac.compare_digest(digest.hex(), stored.lower())
                or hmac.compare_digest(base64.b64encode(digest).decode(), stored))


def _shiro1(secret: bytes, stored: str) -> bool:
    parts = stored.split("$")
    if len(parts) != 6:
        return False
    algorithm = ALGORITHMS.get(parts[2].upper())
    if algorithm is None or not parts[3].isdigit() or not 1 <= int(parts[3]) <= MAX_ITERATIONS:
        return False
    try:
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(simple_hash(algorithm, secret, salt, int(parts[3])), expected)
