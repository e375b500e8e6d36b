"""Django's default password hasher, through libpass."""

from __future__ import annotations

from collections.abc import Mapping

from passlib.hash import django_pbkdf2_sha256

from migration.hashes.base import NamedScheme

#: Most PBKDF2 iterations a stored value may ask for (Django 6 uses
#: 1,200,000); more is no match, never a login that hangs.
MAX_ITERATIONS = 2_000_000


class DjangoPbkdf2Sha256(NamedScheme):
    """``pbkdf2_sha256$iterations$salt$base64``: Django's
    ``PBKDF2PasswordHasher``."""

    name = "django_pbkdf2_sha256"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        iterations = stored.split("$")[1] if stored.count("$") == 3 else ""
        return (django_pbkdf2_sha256.identify(stored) and iterations.isdigit()
                and int(iterations) <= MAX_ITERATIONS
                and django_pbkdf2_sha256.verify(secret, stored))
