"""Verified identity claims: ``verified_claims`` (OpenID Connect for Identity
Assurance 1.0) under the ``realname`` scope, and the resident ID number
under the ``idcard`` scope.

- ``verified_claims`` holds the registry-verified name (and, with
  ``idcard``, the birth date the ID number states), with ``verification``:
  the trust framework, the account's assurance level, the time of the
  newest evidence, and on request the evidence itself. It is released to
  userinfo under ``realname``, and to the ID token only when the ``claims``
  parameter asks for it there.
- ``resident_id_number`` is released only by userinfo, never in a token
  (tokens are logged and cached by relying parties far more than userinfo
  answers), and only while the number is verified (level 2 or more).

Nothing is released for an account below level 2.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list

from idp.accounts import service as accounts
from idp.accounts.identifiers import parse_resident_id
from idp.accounts.models import Account, VerificationEvidence
from idp.accounts.verification import evidence_of, is_live, level_from
from idp.runtime import Runtime
from idp.timeutil import utcnow

#: How each method appears as OIDC4IDA evidence: type, check_method (the
#: predefined values ``data`` -- validation against an authoritative source,
#: ``bvr`` -- remote biometric verification, ``vpip`` -- physical document
#: verified in person, ``vcrypt`` -- the document's cryptographic security
#: features verified, as a kiosk reading the card's chip does), and the
#: record or document type (a card read's type depends on the card:
#: :data:`CARD_DOCUMENT_TYPES`).
EVIDENCE_SHAPES: dict[str, tuple[str, str, str]] = {
    "population_registry": ("electronic_record", "data", "population_register"),
    "face_comparison": ("electronic_record", "bvr", "population_register"),
    "social_security_card": ("electronic_record", "data", "social_security_register"),
    "carrier_three_element": ("electronic_record", "data", "mobile_operator_register"),
    "in_person": ("document", "vpip", "idcard"),
    "card_read": ("document", "vcrypt", "idcard"),
}
#: The document type of a kiosk card read, by the card read (its ``result``).
CARD_DOCUMENT_TYPES = {"resident_id": "idcard", "social_security": "social_security_card"}
#: Who keeps each record (``check_details.organization``).
ORGANIZATIONS = {
    "population": "population registry", "face": "population registry",
    "social_security": "social security registry", "carrier": "mobile carrier",
    "counter": "government service counter", "kiosk": "government service kiosk",
}
CLAIMS_IN_VERIFIED_CLAIMS = ("name", "birthdate")
EVIDENCE_TYPES = ("electronic_record", "document")
#: Document types evidence names (discovery's ``documents_supported``).
DOCUMENT_TYPES = ("idcard", "social_security_card")


def _iso(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat() + "Z"


def _evidence_item(item: VerificationEvidence) -> dict[str, Any]:
    kind, check_method, record_type = EVIDENCE_SHAPES[item.method]
    check = {"check_method": check_method, "organization": ORGANIZATIONS[item.source],
             "txn": item.reference, "time": _iso(item.verified_at)}
    entry: dict[str, Any] = {"type": kind, "check_details": [check],
                             "time": _iso(item.verified_at)}
    if kind == "document":
        if item.method == "card_read":
            record_type = CARD_DOCUMENT_TYPES.get(item.result, record_type)
        entry["document_details"] = {"type": record_type}
    else:
        entry["record"] = {"type": record_type,
                           "source": {"name": ORGANIZATIONS[item.source]}}
    return entry


def _accepts(constraint: Any, value: str) -> bool:
    """A ``value``/``values`` constraint of a request (OIDC4IDA §6.5) is met by ``value``."""
    if not isinstance(constraint, dict):
        return True
    if "value" in constraint and constraint["value"] != value:
        return False
    values = constraint.get("values")
    return not (isinstance(values, list) and value not in values)


#: A ``max_age`` beyond this many seconds (about 3,000 years) asks nothing.
MAX_AGE_LIMIT = 10**11


def _fresh_enough(constraint: Any, verified: datetime, now: datetime) -> bool:
    """A ``max_age`` constraint on ``time`` (OIDC4IDA §6.5.2), seconds; a
    negative one is never met, and one too large to be a date is always met."""
    max_age = constraint.get("max_age") if isinstance(constraint, dict) else None
    if not isinstance(max_age, int) or isinstance(max_age, bool):
        return True
    if max_age >= MAX_AGE_LIMIT:
        return True
    return max_age >= 0 and now - verified <= timedelta(seconds=max_age)


def verified_claims(rt: Runtime, account: Account, evidence: list[VerificationEvidence],
                    scope: set[str], requested: Any) -> dict[str, Any] | None:
    """The ``verified_claims`` object for ``account``, or None.

    :param evidence: the account's evidence (:func:`evidence_of`).
    :param scope: the granted scopes; ``realname`` is needed, ``idcard``
        adds the birth date.
    :param requested: the claims request's ``verified_claims`` entry, or None
        for a release by scope (no evidence then). Requested constraints on
        ``trust_framework``, ``assurance_level`` and ``time`` that the
        verification does not meet mean nothing is released (OIDC4IDA §6.5).
    """
    if "realname" not in scope or not account.verified_name:
        return None
    now = utcnow()
    level = level_from(account, evidence, now)
    live = [item for item in evidence if is_live(item, now)]
    if level < 2 or not live:
        return None
    request = requested if isinstance(requested, dict) else {}
    wanted_verification = request.get("verification")
    wanted_verification = wanted_verification if isinstance(wanted_verification, dict) else {}
    framework = rt.settings["assurance"]["trust_framework"]
    assurance_level = rt.acr.acr_of(level)
    newest = max(item.verified_at for item in live)
    if not (_accepts(wanted_verification.get("trust_framework"), framework)
            and _accepts(wanted_verification.get("assurance_level"), assurance_level)
            and _fresh_enough(wanted_verification.get("time"), newest, now)):
        return None
    verification: dict[str, Any] = {"trust_framework": framework,
                                    "assurance_level": assurance_level, "time": _iso(newest)}
    if "evidence" in wanted_verification:
        verification["evidence"] = [_evidence_item(item) for item in live]
    available = {"name": account.verified_name}
    if "idcard" in scope:
        number = accounts.resident_id(rt, account)
        if number:
            available["birthdate"] = parse_resident_id(number).birth_date.isoformat()
    wanted_claims = request.get("claims")
    if isinstance(wanted_claims, dict) and wanted_claims:
        available = {k: v for k, v in available.items() if k in wanted_claims}
    if not available:
        return None
    return {"verification": verification, "claims": available}


def identity_claims(rt: Runtime, account: Account, scope: str, requested: dict | None, *,
                    userinfo: bool) -> dict[str, Any]:
    """The identity claims to release with the standard ones.

    :param requested: one member of the claims request (``userinfo`` or
        ``id_token``), or None.
    :param userinfo: True for the userinfo answer (release by scope, and the
        ID number); False for an ID token (only what the request asks for).
    """
    granted = set(scope_to_list(scope))
    requested = requested or {}
    wants_verified = "verified_claims" in requested or (userinfo and "realname" in granted)
    wants_number = userinfo and "idcard" in granted and bool(account.resident_id_enc)
    if not (wants_verified or wants_number):
        return {}
    evidence = evidence_of(account)
    out: dict[str, Any] = {}
    if wants_verified:
        claims = verified_claims(rt, account, evidence, granted,
                                 requested.get("verified_claims"))
        if claims is not None:
            out["verified_claims"] = claims
    if wants_number and level_from(account, evidence) >= 2:
        out["resident_id_number"] = accounts.resident_id(rt, account)
    return out
