"""Personal identifiers at rest: AEAD encryption with key ids and a keyed
blind index for lookup and uniqueness (DESIGN.md, Storage).

Resident ID numbers, phone numbers, card numbers and certificate serials are
stored as ``v1.<key id>.<algorithm>.<base64url(nonce | ciphertext | tag)>``,
encrypted with AES-256-GCM or SM4-GCM (GB/T 32907) and bound to their kind
(``resident_id``, ``phone``...) as associated data, so a value cannot be moved
to another column. Beside each, a blind index -- HMAC-SHA256 or HMAC-SM3
(GB/T 32905) of the normalised value under a separate key -- lets the
database find and de-duplicate values without holding them in clear.

Keys rotate: several keys may be configured, new values use the active one,
and every configured key still decrypts. The index key cannot rotate without
recomputing every index, so it is separate from the encryption keys.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ALGORITHMS = ("AES-256-GCM", "SM4-GCM")
INDEX_ALGORITHMS = ("HMAC-SHA256", "HMAC-SM3")
_VERSION = "v1"


class PiiError(Exception):
    """A stored value cannot be decrypted: altered, of another kind, or under
    a key that is no longer configured. The message never contains the value."""


def _derive(material: bytes, purpose: str, length: int) -> bytes:
    # One configured key serves both algorithms; HKDF gives each its own key.
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=f"idp pii {purpose}".encode()).derive(material)


def _sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag


def _sm4_gcm_decrypt(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, sealed[-16:])).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(sealed[:-16]) + decryptor.finalize()


class PiiCipher:
    """Encrypts, decrypts and indexes personal identifiers.

    :param keys: key id -> key material (at least 32 bytes each).
    :param active_key: id of the key new values are encrypted with.
    :param algorithm: ``AES-256-GCM`` or ``SM4-GCM`` for new values (stored
        values say their own algorithm, so switching is possible).
    :param index_key: key material of the blind index (at least 32 bytes).
    :param index_algorithm: ``HMAC-SHA256`` or ``HMAC-SM3``.
    :raises ValueError: on an unknown algorithm, a missing active key or short keys.
    """

    def __init__(self, keys: Mapping[str, bytes], active_key: str, algorithm: str,
                 index_key: bytes, index_algorithm: str) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"PII algorithm must be one of {', '.join(ALGORITHMS)}")
        if index_algorithm not in INDEX_ALGORITHMS:
            raise ValueError(f"PII index must be one of {', '.join(INDEX_ALGORITHMS)}")
        if active_key not in keys:
            raise ValueError(f"the active PII key {active_key!r} is not configured")
        for kid, material in keys.items():
            if len(material) < 32 or not kid.isalnum():
                raise ValueError(f"PII key {kid!r} must have an alphanumeric id and 32 bytes")
        if len(index_key) < 32:
            raise ValueError("the PII index key must have at least 32 bytes")
        self._keys = {kid: {"AES-256-GCM": _derive(m, "AES-256-GCM", 32),
                            "SM4-GCM": _derive(m, "SM4-GCM", 16)} for kid, m in keys.items()}
        self._active = active_key
        self._algorithm = algorithm
        self._index_key = index_key
        self._index_hash = hashes.SHA256() if index_algorithm == "HMAC-SHA256" else hashes.SM3()

    def encrypt(self, kind: str, value: str) -> str:
        """Encrypt ``value`` (already normalised) as a value of ``kind``."""
        key = self._keys[self._active][self._algorithm]
        nonce = os.urandom(12)
        aad = f"{_VERSION}:{kind}".encode()
        if self._algorithm == "AES-256-GCM":
            sealed = AESGCM(key).encrypt(nonce, value.encode(), aad)
        else:
            sealed = _sm4_gcm_encrypt(key, nonce, value.encode(), aad)
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_VERSION}.{self._active}.{self._algorithm}.{body}"

    def decrypt(self, kind: str, stored: str) -> str:
        """Reverse :meth:`encrypt` with whichever configured key the value names.

        :raises PiiError: if the value is malformed, altered, of another kind,
            or its key is not configured.
        """
        try:
            version, kid, algorithm, body = stored.split(".", 3)
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, AttributeError):
            raise PiiError("stored personal data is malformed") from None
        if version != _VERSION or algorithm not in ALGORITHMS or len(raw) < 29:
            raise PiiError("stored personal data is malformed")
        if kid not in self._keys:
            raise PiiError(f"stored personal data needs key {kid!r}, which is not configured")
        key, nonce, sealed = self._keys[kid][algorithm], raw[:12], raw[12:]
        aad = f"{version}:{kind}".encode()
        try:
            if algorithm == "AES-256-GCM":
                return AESGCM(key).decrypt(nonce, sealed, aad).decode()
            return _sm4_gcm_decrypt(key, nonce, sealed, aad).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise PiiError("stored personal data was altered or is of another kind") from None

    def needs_reencryption(self, stored: str) -> bool:
        """True when ``stored`` uses another key or algorithm than new values do."""
        parts = stored.split(".", 3)
        return len(parts) != 4 or parts[1] != self._active or parts[2] != self._algorithm

    def blind_index(self, kind: str, value: str) -> str:
        """Keyed hash of ``value`` (already normalised) for lookup and
        uniqueness; equal values of one kind have equal indexes.

        :returns: lowercase hex, 64 characters.
        """
        mac = hmac.HMAC(self._index_key, self._index_hash)
        mac.update(f"{kind}:{value}".encode())
        return mac.finalize().hex()
