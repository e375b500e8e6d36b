"""Keycloak's PBKDF2 password credentials, as its realm export writes them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping

from migration.hashes.base import MAX_DERIVED, NamedScheme

#: Keycloak's algorithm ids -> the PBKDF2 pseudo-random function.
ALGORITHMS = {"pbkdf2": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}
#: Most iterations a stored credential may ask for (Keycloak's default is
#: 27,500 for pbkdf2-sha256 and 210,000 for pbkdf2-sha512).
MAX_ITERATIONS = 1_000_000


class KeycloakPbkdf2(NamedScheme):
    """A password credential of a Keycloak export (``credentials`` of a
    user): the JSON object with ``secretData`` (``value`` and ``salt``,
    Base64) and ``credentialData`` (``hashIterations`` and ``algorithm``),
    each an object or, as the export writes them, a JSON string. The
    derived key's length is the stored value's."""

    name = "keycloak_pbkdf2"

    def matches(self, secret: bytes, stored: str, values: Mapping[str, str | None]) -> bool:
        try:
            credential = json.loads(stored)
            secret_data = _object(credential["secretData"])
            credential_data = _object(credential["credentialData"])
            prf = ALGORITHMS[credential_data.get("algorithm", "pbkdf2-sha256")]
            iterations = credential_data["hashIterations"]
            salt = base64.b64decode(secret_data["salt"], validate=True)
            expected = base64.b64decode(secret_data["value"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return False
        if (not isinstance(iterations, int) or not 1 <= iterations <= MAX_ITERATIONS
                or not 16 <= len(expected) <= MAX_DERIVED):
            return False
        return hmac.compare_digest(
            hashlib.pbkdf2_hmac(prf, secret, salt, iterations, len(expected)), expected)


def _object(value: object) -> dict:
    """``value``, or the JSON object a string holds.

    :raises ValueError: neither.
    """
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value
