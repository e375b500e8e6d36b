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
from idp.accounts.models import Account
from idp.accounts.verification import METHODS, Assurance, LiveEvidence, assurance
from idp.runtime import Runtime

CLAIMS_IN_VERIFIED_CLAIMS = ("name", "birthdate")
#: Evidence types the methods are released as (discovery's ``evidence_supported``).
EVIDENCE_TYPES = tuple(dict.fromkeys(method.evidence_type for method in METHODS.values()))
#: Document types evidence names (discovery's ``documents_supported``).
DOCUMENT_TYPES = tuple(dict.fromkeys(
    kind for method in METHODS.values() if method.evidence_type == "document"
    for kind in (method.record_type, *method.document_types.values())))


def _iso(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat() + "Z"


def _evidence_item(item: LiveEvidence) -> dict[str, Any]:
    """One live verification as OIDC4IDA ``evidence``, named by its method's
    row (``idp.accounts.verification.METHODS``)."""
    method = item.method
    check = {"check_method": method.check_method, "organization": method.organization,
             "txn": item.reference, "time": _iso(item.verified_at)}
    entry: dict[str, Any] = {"type": method.evidence_type, "check_details": [check],
                             "time": _iso(item.verified_at)}
    if method.evidence_type == "document":
        entry["document_details"] = {"type": item.record_type}
    else:
        entry["record"] = {"type": item.record_type,
                           "source": {"name": method.organization}}
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


def verified_claims(rt: Runtime, account: Account, state: Assurance, scope: set[str],
                    requested: Any) -> dict[str, Any] | None:
    """The ``verified_claims`` object for ``account``, or None.

    :param state: the account's assurance (:func:`idp.accounts.verification.assurance`).
    :param scope: the granted scopes; ``realname`` is needed, ``idcard``
        adds the birth date.
    :param requested: the claims request's ``verified_claims`` entry, or None
        for a release by scope (no evidence then). Requested constraints on
        ``trust_framework``, ``assurance_level`` and ``time`` that the
        verification does not meet mean nothing is released (OIDC4IDA §6.5).
    """
    if "realname" not in scope or state.verified_name is None or not state.evidence:
        return None
    request = requested if isinstance(requested, dict) else {}
    wanted_verification = request.get("verification")
    wanted_verification = wanted_verification if isinstance(wanted_verification, dict) else {}
    framework = rt.settings["assurance"]["trust_framework"]
    assurance_level = rt.acr.acr_of(state.level)
    newest = state.verified_at
    if not (_accepts(wanted_verification.get("trust_framework"), framework)
            and _accepts(wanted_verification.get("assurance_level"), assurance_level)
            and _fresh_enough(wanted_verification.get("time"), newest, state.as_of)):
        return None
    verification: dict[str, Any] = {"trust_framework": framework,
                                    "assurance_level": assurance_level, "time": _iso(newest)}
    if "evidence" in wanted_verification:
        verification["evidence"] = [_evidence_item(item) for item in state.evidence]
    available = {"name": state.verified_name}
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
    state = assurance(account)
    out: dict[str, Any] = {}
    if wants_verified:
        claims = verified_claims(rt, account, state, granted, requested.get("verified_claims"))
        if claims is not None:
            out["verified_claims"] = claims
    if wants_number and state.level >= 2:
        out["resident_id_number"] = accounts.resident_id(rt, account)
    return out
