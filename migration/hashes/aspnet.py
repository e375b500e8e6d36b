"""ASP.NET's password formats: Identity's PBKDF2 blobs (v2, v3) and the
older Membership provider's salted SHA-1."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from migration.hashes.base import MAX_DERIVED, NamedScheme

#: Identity v3's pseudo-random functions, by their number in the blob.
_V3_PRF = {0: "sha1", 1: "sha256", 2: "sha512"}
#: Most PBKDF2 iterations a stored value may ask for: a bound on the cost
#: of verifying one row (Identity's own default is 100,000 since .NET 7).
MAX_ITERATIONS = 1_000_000


def _decode(stored: str) -> bytes | None:
    try:
        return base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        return None


class AspnetIdentityV2(NamedScheme):
    """ASP.NET Identity v2 (``PasswordHasherCompatibilityMode.IdentityV2``):
    Base64 of ``0x00``, a 16-byte salt and 32 bytes of PBKDF2-HMAC-SHA1 with
    1,000 iterations over the password's UTF-8 bytes."""

    name = "aspnet_identity_v2"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        blob = _decode(stored)
        if blob is None or len(blob) != 49 or blob[0] != 0:
            return False
        derived = hashlib.pbkdf2_hmac("sha1", secret, blob[1:17], 1000, 32)
        return hmac.compare_digest(derived, blob[17:])


class AspnetIdentityV3(NamedScheme):
    """ASP.NET Identity v3: Base64 of ``0x01``, the PRF (0 SHA-1, 1
    SHA-256, 2 SHA-512), the iteration count and the salt's length (each a
    big-endian uint32), the salt, then the PBKDF2 subkey."""

    name = "aspnet_identity_v3"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        blob = _decode(stored)
        if blob is None or len(blob) < 13 or blob[0] != 1:
            return False
        prf = _V3_PRF.get(int.from_bytes(blob[1:5], "big"))
        iterations = int.from_bytes(blob[5:9], "big")
        salt_length = int.from_bytes(blob[9:13], "big")
        salt, subkey = blob[13:13 + salt_length], blob[13 + salt_length:]
        if (prf is None or not 1 <= iterations <= MAX_ITERATIONS or salt_length < 8
                or len(salt) != salt_length or not 16 <= len(subkey) <= MAX_DERIVED):
            return False
        derived = hashlib.pbkdf2_hmac(prf, secret, salt, iterations, len(subkey))
        return hmac.compare_digest(derived, subkey)


class AspnetMembershipSha1(NamedScheme):
    """The ASP.NET Membership provider's ``Hashed`` format: Base64 of
    SHA-1 over the Base64-decoded salt (the ``PasswordSalt`` column)
    followed by the password's UTF-16LE bytes."""

    name = "aspnet_membership_sha1"
    fields = frozenset({"password", "salt"})

    def verify(self, password: str, stored: str, values: Mapping[str, str | None]) -> str | None:
        if values.get("salt") is None:
            return super().verify(password, stored, values)  # names the missing salt
        salt, expected = _decode(values["salt"].strip()), _decode(stored.strip())
        if salt is None or expected is None:
            return None
        try:
            secret = password.encode("utf-16le")
        except UnicodeEncodeError:
            return None
        return "utf-16le" if hmac.compare_digest(
            hashlib.sha1(salt + secret).digest(), expected) else None  # noqa: S324 - the format's own
