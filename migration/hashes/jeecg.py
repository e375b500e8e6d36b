"""JeecgBoot's ``PasswordUtil``: the login name encrypted under the
password, PBEWithMD5AndDES (PKCS #5 v1.5 PBES1, RFC 8018 §6.1) with the
row's 8-character salt and 1,000 iterations, as hex."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:  # cryptography 43 moved DES to its "decrepit" algorithms.
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

from migration.hashes.base import NamedScheme

#: JeecgBoot's ``PasswordUtil.ITERATIONCOUNT``.
ITERATIONS = 1000


def pbe_md5_des(plaintext: bytes, password: bytes, salt: bytes,
                iterations: int = ITERATIONS) -> bytes:
    """PBEWithMD5AndDES encryption (RFC 8018 §6.1.1): PBKDF1 with MD5 gives
    the DES key (first 8 bytes) and CBC IV (next 8), PKCS #5 padding.

    :param salt: 8 bytes.
    :returns: the ciphertext.
    """
    derived = password + salt
    for _ in range(iterations):
        derived = hashlib.md5(derived).digest()  # noqa: S324 - the format's own
    key, iv = derived[:8], derived[8:16]
    padder = padding.PKCS7(64).padder()
    data = padder.update(plaintext) + padder.finalize()
    # Single DES as three-key 3DES with one key repeated (EDE = E).
    encryptor = Cipher(TripleDES(key * 3), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


class Jeecg(NamedScheme):
    """``PasswordUtil.encrypt(username, password, salt)`` of JeecgBoot:
    the hex of the login name encrypted with PBEWithMD5AndDES keyed by
    the password and the row's salt. Java refuses non-ASCII passwords
    there, so only ASCII ones can match."""

    name = "jeecg"
    fields = frozenset({"password", "salt", "username"})

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        salt = (values["salt"] or "").encode("utf-8")
        if not secret.isascii() or len(salt) != 8:
            return False
        made = pbe_md5_des((values["username"] or "").encode("utf-8"), secret, salt).hex()
        return hmac.compare_digest(made, stored.lower())
