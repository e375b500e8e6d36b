"""Spring Security's ``DelegatingPasswordEncoder``: ``{id}encoded``, the id
naming the encoder (``PasswordEncoderFactories``), each verified here as
that encoder verifies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping

from passlib.hash import argon2

from migration.hashes.base import MAX_DERIVED, NamedScheme
from migration.hashes.bcrypt import Bcrypt

#: ``{id}`` and the rest of the stored value.
_PREFIXED = re.compile(r"\{([A-Za-z0-9@._-]+)\}(.*)", re.DOTALL)
#: A ``MessageDigestPasswordEncoder`` value's own ``{salt}``, if any.
_SALTED = re.compile(r"(\{[^}]*\})(.*)", re.DOTALL)
#: Most scrypt work a stored value may ask for (N * r * 128 bytes of memory).
MAX_SCRYPT_MEMORY = 64 * 1024 * 1024


def _hex(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _pbkdf2(algorithm: str, salt_length: int, iterations: int) -> Callable[[bytes, str], bool]:
    """``Pbkdf2PasswordEncoder``: hex of the salt and the derived key (the
    encoder's secret is empty)."""
    def check(secret: bytes, encoded: str) -> bool:
        raw = _hex(encoded)
        if raw is None or len(raw) <= salt_length:
            return False
        salt, expected = raw[:salt_length], raw[salt_length:]
        if len(expected) > MAX_DERIVED:
            return False
        derived = hashlib.pbkdf2_hmac(algorithm, secret, salt, iterations, len(expected))
        return hmac.compare_digest(derived, expected)
    return check


def _standard_sha256(secret: bytes, encoded: str) -> bool:
    """``StandardPasswordEncoder`` (``{sha256}``): hex of an 8-byte salt
    and SHA-256 of salt and password, iterated 1,024 times."""
    raw = _hex(encoded)
    if raw is None or len(raw) != 40:
        return False
    digest = hashlib.sha256(raw[:8] + secret).digest()
    for _ in range(1023):
        digest = hashlib.sha256(digest).digest()
    return hmac.compare_digest(digest, raw[8:])


def _message_digest(algorithm: str) -> Callable[[bytes, str], bool]:
    """``MessageDigestPasswordEncoder``: hex of the digest of the password
    followed by the value's own ``{salt}`` (kept in front of the hex)."""
    def check(secret: bytes, encoded: str) -> bool:
        salted = _SALTED.fullmatch(encoded)
        salt, hexed = (salted[1], salted[2]) if salted else ("", encoded)
        digest = hashlib.new(algorithm, secret + salt.encode("utf-8")).hexdigest()
        return hmac.compare_digest(digest, hexed.lower())
    return check


def _ldap(secret: bytes, encoded: str) -> bool:
    """``LdapShaPasswordEncoder``: ``{SSHA}`` base64 of SHA-1 of password
    and salt, then the salt; ``{SHA}`` without a salt."""
    match = re.fullmatch(r"\{(SSHA|SHA)\}(.*)", encoded, re.IGNORECASE | re.DOTALL)
    if match is None:
        return False
    try:
        raw = base64.b64decode(match[2], validate=True)
    except binascii.Error:
        return False
    if len(raw) < 20 or (match[1].upper() == "SHA" and len(raw) != 20):
        return False
    digest = hashlib.sha1(secret + raw[20:]).digest()  # noqa: S324 - the format's own
    return hmac.compare_digest(digest, raw[:20])


def _scrypt(secret: bytes, encoded: str) -> bool:
    """``SCryptPasswordEncoder``: ``$`` hex parameters (log2 N, r, p) ``$``
    base64 salt ``$`` base64 key."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0]:
        return False
    try:
        params = int(parts[1], 16)
        salt, expected = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (ValueError, binascii.Error):
        return False
    log_n, r, p = params >> 16, (params >> 8) & 0xFF, params & 0xFF
    if not expected or len(expected) > MAX_DERIVED or log_n > 20 or not r or r > 16 \
            or not p or p > 4:
        return False
    n = 2 ** log_n
    if n * r * 128 > MAX_SCRYPT_MEMORY:
        return False
    derived = hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=len(expected),
                             maxmem=2 * MAX_SCRYPT_MEMORY)
    return hmac.compare_digest(derived, expected)


def _bcrypt(secret: bytes, encoded: str) -> bool:
    return Bcrypt().matches(secret, encoded, {})


#: Most memory (KiB), passes and lanes a stored argon2 value may ask for.
MAX_ARGON2 = (65_536, 4, 4)
_ARGON2 = re.compile(r"\$argon2(?:id|i|d)\$(?:v=\d+\$)?m=(\d{1,9}),t=(\d{1,9}),p=(\d{1,9})\$")


def _argon2(secret: bytes, encoded: str) -> bool:
    params = _ARGON2.match(encoded)
    if params is None or any(int(given) > most
                             for given, most in zip(params.groups(), MAX_ARGON2, strict=True)):
        return False
    return argon2.identify(encoded) and argon2.verify(secret, encoded)


def _noop(secret: bytes, encoded: str) -> bool:
    return hmac.compare_digest(secret, encoded.encode("utf-8"))


#: ``{id}`` -> its check, as ``PasswordEncoderFactories`` registers them
#: (Spring Security 5.8 and 6); ``MD4`` is left out (hashlib may lack it).
ENCODERS: dict[str, Callable[[bytes, str], bool]] = {
    "bcrypt": _bcrypt,
    "noop": _noop,
    "pbkdf2": _pbkdf2("sha1", 8, 185_000),
    "pbkdf2@SpringSecurity_v5_8": _pbkdf2("sha256", 16, 310_000),
    "scrypt": _scrypt,
    "scrypt@SpringSecurity_v5_8": _scrypt,
    "sha256": _standard_sha256,
    "MD5": _message_digest("md5"),
    "SHA-1": _message_digest("sha1"),
    "SHA-256": _message_digest("sha256"),
    "ldap": _ldap,
    "argon2": _argon2,
    "argon2@SpringSecurity_v5_8": _argon2,
}


class Spring(NamedScheme):
    """``{id}encoded`` values of Spring Security's ``DelegatingPasswordEncoder``
    (``bcrypt``, ``noop``, ``pbkdf2``, ``scrypt``, ``sha256``, ``MD5``,
    ``SHA-1``, ``SHA-256``, ``ldap``, ``argon2`` and their
    ``@SpringSecurity_v5_8`` forms)."""

    name = "spring"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        prefixed = _PREFIXED.fullmatch(stored)
        check = ENCODERS.get(prefixed[1]) if prefixed else None
        return check is not None and check(secret, prefixed[2])
