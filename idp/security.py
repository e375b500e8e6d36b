"""Small cryptographic helpers shared by services: random tokens, keyed hashes
for secrets at rest, constant-time comparison, AEAD for stored private keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def random_token(nbytes: int = 32) -> str:
    """Return ``nbytes`` of CSPRNG output as unpadded base64url text (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def keyed_hash(key: bytes, value: str, purpose: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, domain-separated by ``purpose``.

    Machine-generated secrets (client secrets, refresh tokens, codes) have 256
    bits of entropy, so a keyed fast hash is enough at rest; a slow KDF here
    would cap the token endpoint (DESIGN.md, Speed).

    :returns: lowercase hex digest, 64 characters.
    """
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    """Compare two strings in time independent of where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())


class DecryptionError(Exception):
    """Ciphertext was altered or encrypted under another key."""


def encrypt(key: bytes, plaintext: bytes, associated_data: bytes) -> str:
    """AES-256-GCM encrypt; returns base64url(nonce(12) || ciphertext || tag(16))."""
    nonce = os.urandom(12)
    sealed = AESGCM(key[:32]).encrypt(nonce, plaintext, associated_data)
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt(key: bytes, token: str, associated_data: bytes) -> bytes:
    """Reverse of :func:`encrypt`.

    :raises DecryptionError: if the data or the associated data was altered.
    """
    raw = base64.urlsafe_b64decode(token)
    try:
        return AESGCM(key[:32]).decrypt(raw[:12], raw[12:], associated_data)
    except InvalidTag as exc:
        raise DecryptionError("stored secret cannot be decrypted with the configured key") from exc
