"""Standard claims by scope (OIDC Core §5.4) and the ``claims`` request
parameter (OIDC Core §5.5)."""

from __future__ import annotations

import json
from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list

from idp.accounts.models import Account
from idp.timeutil import to_epoch

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "preferred_username", "updated_at"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
}
#: Personal identifiers released only by userinfo, never in an ID token:
#: tokens are logged and cached by relying parties far more than userinfo
#: answers are (idp.oidc.identity holds the same rule for the ID number).
USERINFO_ONLY = frozenset({"phone_number"})
#: Claims of the identity scopes, released by idp.oidc.identity.
IDENTITY_SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "realname": ("verified_claims",),
    "idcard": ("resident_id_number",),
}
#: Claims of a department's client (idp.oidc.legacy_claims).
LEGACY_SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {"legacy": ("legacy_ids",)}
SUPPORTED_CLAIMS = ("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                    "sid", "at_hash", *(c for cs in SCOPE_CLAIMS.values() for c in cs),
                    *(c for cs in IDENTITY_SCOPE_CLAIMS.values() for c in cs),
                    *(c for cs in LEGACY_SCOPE_CLAIMS.values() for c in cs))


class ClaimsRequestError(ValueError):
    """The ``claims`` parameter is not a valid JSON claims request."""


def parse_claims_request(raw: str | None) -> dict[str, dict] | None:
    """Parse the ``claims`` authorization parameter.

    :returns: ``{"userinfo": {...}, "id_token": {...}}`` (members optional), or None.
    :raises ClaimsRequestError: if it is not a JSON object of objects.
    """
    if not raw:
        return None
    if len(raw) > 4096:
        raise ClaimsRequestError("claims parameter is too long")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise ClaimsRequestError("claims parameter is not valid JSON") from None
    if not isinstance(value, dict):
        raise ClaimsRequestError("claims parameter must be a JSON object")
    out: dict[str, dict] = {}
    for member in ("userinfo", "id_token"):
        entry = value.get(member)
        if entry is None:
            continue
        if not isinstance(entry, dict) or not all(
            v is None or isinstance(v, dict) for v in entry.values()
        ):
            raise ClaimsRequestError(f"claims.{member} must map claim names to null or objects")
        out[member] = entry
    return out or None


def account_claims(account: Account, phone_number: str | None) -> dict[str, Any]:
    """Every standard claim the account has a value for (``sub`` excluded).

    :param phone_number: the account's decrypted E.164 number, if any.
    """
    claims: dict[str, Any] = {
        "preferred_username": account.username,
        "updated_at": to_epoch(account.updated_at),
    }
    if account.name:
        claims["name"] = account.name
    if account.email:
        claims["email"] = account.email
        claims["email_verified"] = bool(account.email_verified)
    if phone_number:
        claims["phone_number"] = phone_number
        claims["phone_number_verified"] = bool(account.phone_number_verified)
    return claims


def select_claims(
    account: Account, scope: str, requested: dict[str, Any] | None, *, by_scope: bool,
    phone_number: str | None = None,
) -> dict[str, Any]:
    """Choose the user claims to release.

    :param scope: granted scope; its claims are released when ``by_scope``.
    :param requested: one member of a claims request (``userinfo`` or ``id_token``);
        individually requested claims are released only if the scope that
        covers them was granted, so the claims parameter cannot widen consent.
    :param by_scope: True for userinfo, False for an ID token that comes with
        an access token (OIDC Core §5.4: scope claims then go to userinfo;
        :data:`USERINFO_ONLY` claims are never put in it).
    :param phone_number: the decrypted number, passed only when the phone scope
        was granted (so it is decrypted only when it may be released).
    """
    available = account_claims(account, phone_number)
    granted = set(scope_to_list(scope))
    allowed = {c for s, cs in SCOPE_CLAIMS.items() if s in granted for c in cs}
    names = set(allowed) if by_scope else set()
    if requested:
        names |= {name for name in requested if name in allowed}
    if not by_scope:
        names -= USERINFO_ONLY
    return {name: available[name] for name in sorted(names) if name in available}
