"""Request signatures of the data-sharing gateway (``docs/connectors.md``).

One signature scheme, shared by the HTTP client (:mod:`connectors.http`) and
the sandbox gateway (:mod:`connectors.sandbox`), so the two cannot drift
apart. No I/O here: every function takes its inputs as arguments.

The string to sign is, joined by ``"\\n"``::

    METHOD
    /path
    canonical query (pairs sorted, RFC 3986 percent-encoding)
    date (RFC 3339 UTC, "2026-11-29T15:00:00Z")
    nonce
    hex SHA-256 of the body

and the signature is the hex HMAC-SHA256 of it under the secret of the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

SCHEME = "GW-HMAC-SHA256"
HEADER_KEY = "X-Gateway-Key"
HEADER_DATE = "X-Gateway-Date"
HEADER_NONCE = "X-Gateway-Nonce"
HEADER_DIGEST = "X-Gateway-Content-SHA256"
#: Shortest nonce the gateway accepts, in characters.
MIN_NONCE_LENGTH = 16
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_AUTH_RE = re.compile(rf"{SCHEME} Credential=([^,\s]+),\s*Signature=([0-9a-f]{{64}})")


def body_digest(body: bytes) -> str:
    """Hex SHA-256 of the request body (``b""`` for a GET)."""
    return hashlib.sha256(body).hexdigest()


def canonical_query(query: str) -> str:
    """Canonical form of a raw query string: ``key=value`` pairs sorted by key
    then value, each part percent-encoded per RFC 3986 (unreserved characters
    kept, space as ``%20``), joined by ``&``. Blank values are kept.

    ``"b=2&a=%2B86 1&a=0"`` -> ``"a=%2B86%201&a=0&b=2"`` (sorted on the decoded
    values, so ``+``-for-space and ``%20`` sign the same).
    """
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def format_date(when: datetime) -> str:
    """RFC 3339 UTC form the gateway expects, whole seconds (``2026-11-29T15:00:00Z``).

    :param when: an aware datetime (converted to UTC).
    """
    return when.astimezone(UTC).strftime(DATE_FORMAT)


def parse_date(text: str) -> datetime:
    """Parse the ``X-Gateway-Date`` header.

    :returns: an aware UTC datetime.
    :raises ValueError: if ``text`` is not exactly ``YYYY-MM-DDTHH:MM:SSZ``.
    """
    if not _DATE_RE.fullmatch(text or ""):
        raise ValueError("date must look like 2026-11-29T15:00:00Z")
    return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC)


def string_to_sign(method: str, path: str, query: str, date: str, nonce: str,
                   digest: str) -> str:
    """The six lines covered by the signature (method upper-cased, query canonicalised)."""
    return "\n".join((method.upper(), path, canonical_query(query), date, nonce, digest))


def signature(secret: str, method: str, path: str, query: str, date: str, nonce: str,
              digest: str) -> str:
    """Hex HMAC-SHA256 under ``secret`` of :func:`string_to_sign`."""
    message = string_to_sign(method, path, query, date, nonce, digest)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """A fresh random nonce (32 hex characters, 128 bits)."""
    return secrets.token_hex(16)


def sign_request(access_key: str, secret: str, method: str, path: str, query: str,
                 body: bytes, when: datetime, nonce: str | None = None) -> dict[str, str]:
    """Headers that authenticate one request.

    :param path: the URL path exactly as sent (``/population/v1/verify``).
    :param query: the raw query string as sent, without ``?`` (``""`` if none).
    :param body: the exact body bytes sent.
    :param when: the signing time (aware datetime); the gateway accepts it
        within 90 s of its own clock.
    :param nonce: for tests; a fresh random one by default. Never reuse one.
    :returns: ``X-Gateway-Key``, ``X-Gateway-Date``, ``X-Gateway-Nonce``,
        ``X-Gateway-Content-SHA256`` and ``Authorization``.
    """
    nonce = nonce or new_nonce()
    date = format_date(when)
    digest = body_digest(body)
    sig = signature(secret, method, path, query, date, nonce, digest)
    return {
        HEADER_KEY: access_key,
        HEADER_DATE: date,
        HEADER_NONCE: nonce,
        HEADER_DIGEST: digest,
        "Authorization": f"{SCHEME} Credential={access_key},Signature={sig}",
    }


def parse_authorization(header: str) -> tuple[str, str] | None:
    """Split ``GW-HMAC-SHA256 Credential=<key>,Signature=<hex>``.

    :returns: ``(access_key, signature)``, or None when malformed.
    """
    match = _AUTH_RE.fullmatch((header or "").strip())
    return (match.group(1), match.group(2)) if match else None


def verify_signature(secret: str, method: str, path: str, query: str, date: str, nonce: str,
                     body: bytes, digest_header: str, given: str) -> bool:
    """Check a received request's signature.

    The body digest header must equal the digest of the body actually
    received (otherwise a signed digest could front a different body), and
    the signature is compared in constant time.

    :returns: True if both hold.
    """
    digest = body_digest(body)
    if not hmac.compare_digest(digest, digest_header or ""):
        return False
    expected = signature(secret, method, path, query, date, nonce, digest)
    return hmac.compare_digest(expected, given or "")
