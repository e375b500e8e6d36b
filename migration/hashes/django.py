"""Django's default password hasher, through libpass."""

from __future__ import annotations

from collections.abc import Mapping

from passlib.hash import django_pbkdf2_sha256

from migration.hashes.base import NamedScheme


class DjangoPbkdf2Sha256(NamedScheme):
    """``pbkdf2_sha256$iterations$salt$base64``: Django's
    ``PBKDF2PasswordHasher``."""

    name = "django_pbkdf2_sha256"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        return (django_pbkdf2_sha256.identify(stored)
                and django_pbkdf2_sha256.verify(secret, stored))
