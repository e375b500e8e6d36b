"""WordPress's password formats: phpass before 6.8, and 6.8's bcrypt
over an HMAC-SHA384 of the password."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from passlib.hash import bcrypt

from migration.hashes.base import NamedScheme
from migration.hashes.bcrypt import cost_allowed
from migration.hashes.phpass import Phpass

#: The HMAC key WordPress 6.8 uses before bcrypt (``wp_hash_password``).
WP_HMAC_KEY = b"wp-sha384"


class WordPress(NamedScheme):
    """``$wp$2y$...`` (WordPress 6.8 and later: bcrypt of the Base64 of
    HMAC-SHA384 of the password keyed ``wp-sha384``, so no password is cut
    at 72 bytes), and the ``$P$`` phpass hashes of earlier versions."""

    name = "wordpress"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        if stored.startswith("$wp$"):
            inner = stored[3:]
            if not bcrypt.identify(inner) or not cost_allowed(inner):
                return False
            digest = hmac.new(WP_HMAC_KEY, secret, hashlib.sha384).digest()
            return bcrypt.verify(base64.b64encode(digest), inner)
        return Phpass().matches(secret, stored, values)
