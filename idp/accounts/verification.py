"""Identity verification: checking who an account really is against the
registries, recording each check as evidence, and what the live evidence
supports: :func:`assurance`, the one answer the protocol and the console
read (level, live evidence, verified name). Everything known about each
verification method (its level, knowledge or possession, its names in
evidence released to relying parties and to users) is one row of
:data:`METHODS`; how long a success counts is ``assurance.validity_days``.

Levels (DESIGN.md, assurance level): 1 a verified phone; 2 name and
resident ID number matched by the population registry; 3 level 2 and an
independent proof of possession (face comparison, carrier three-element
check); 4 verified in person at a counter. Evidence expires
after ``assurance.validity_days`` of its method and can be revoked (password
reset by SMS, an operator's demand for re-verification).

Possession outranks knowledge. A name with an ID number, and the number
printed on a social security card, are known to many people; a card read by
a kiosk, a face comparison, a phone registered to the person at a carrier
and a visit to a counter prove more. An account holds its ID number *by
knowledge only* when none of its live evidence is possession; such a number
goes to whoever proves possession of it (:func:`verify_card_read`, and a
pending :class:`IdentityClaim` proven by face or carrier), and the holder
loses it (``idp.admin.service.release_identity``). For the same reason only
possession lifts an identity to level 3: the social security card check by
typed number confirms the card and makes its number a login identifier,
but whoever holds a stolen card (or saw it) could make it, so it supports
level 2 only, as a card read at a kiosk does.

A registry that cannot answer raises :class:`VerificationUnavailableError`
and records nothing, so an outage never raises or lowers a level. Every
check counts against per-account and per-IP limits, because each answer
tells whether a name and an ID number belong together.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from sqlalchemy import update

from connectors.registries import (
    CardStatus,
    CarrierResult,
    FaceDecision,
    GatewayRequestError,
    PopulationResult,
    RegistryUnavailableError,
)
from idp.accounts import service as accounts
from idp.accounts.identifiers import normalize_name, parse_card_number, parse_resident_id
from idp.accounts.models import Account, VerificationEvidence
from idp.accounts.pii import PiiError
from idp.accounts.recovery import sms_reset_hold_until
from idp.accounts.snapshots import AccountSnapshot, evidence_rows, mark_changed
from idp.audit.service import record, record_deferred
from idp.extensions import db
from idp.i18n import LocalTime
from idp.runtime import Runtime
from idp.timeutil import from_epoch, utcnow
from idp.unit_of_work import after_commit

log = logging.getLogger(__name__)
_Registry = TypeVar("_Registry")
_Answer = TypeVar("_Answer")


@dataclass(frozen=True)
class VerificationMethod:
    """One way of verifying who an account is, and everything the provider
    knows about it: a row of :data:`METHODS`.

    :ivar name: the evidence's ``method`` (``verification_evidence.method``),
        also its key in ``assurance.validity_days``.
    :ivar source: who answers (``verification_evidence.source``).
    :ivar level: the assurance level a success supports (1..4).
    :ivar builds_on: the method whose live evidence this one needs in order
        to count (a strong proof is about the person the population registry
        matched), or None when it stands alone.
    :ivar possession: True for a proof that the person holds what only the
        identity's owner should; False for knowledge, which anyone who knows
        the data can prove (see the module docstring).
    :ivar evidence_type: the OIDC4IDA evidence ``type``: ``electronic_record``
        (a record in an authoritative register) or ``document``.
    :ivar check_method: the OIDC4IDA ``check_details.check_method``: ``data``
        (validation against an authoritative source), ``bvr`` (remote
        biometric verification), ``vpip`` (physical document verified in
        person), ``vcrypt`` (the document's cryptographic security features
        verified, as a kiosk reading the card's chip does).
    :ivar record_type: the record's type (``record.type``) or the
        document's (``document_details.type``).
    :ivar organization: who keeps the record or makes the check, as told to
        relying parties (``check_details.organization``).
    :ivar title: how the method is named to users.
    :ivar document_types: for a method whose document depends on the check's
        ``result`` (a card read: which card), the document type by result.
    """

    name: str
    source: str
    level: int
    builds_on: str | None
    possession: bool
    evidence_type: str
    check_method: str
    record_type: str
    organization: str
    title: LazyString
    document_types: Mapping[str, str] = field(default_factory=dict)


#: The verification methods, by name: the one table the level rule, the
#: possession rule, the evidence released to relying parties and the
#: console's names read. A card, typed or read at a kiosk, supports level 2
#: only: the typed number is printed on it, and a read proves that the card
#: is in the reader, not that its holder is its owner (a stolen card reads
#: the same), so neither lifts anybody to level 3; only possession of the
#: face or of the phone registered to the person does.
METHODS: dict[str, VerificationMethod] = {method.name: method for method in (
    VerificationMethod(
        "population_registry", "population", 2, None, False, "electronic_record", "data",
        "population_register", "population registry",
        _l("Population registry: name and ID number")),
    VerificationMethod(
        "face_comparison", "face", 3, "population_registry", True, "electronic_record", "bvr",
        "population_register", "population registry",
        _l("Face comparison with the registry photo")),
    VerificationMethod(
        "social_security_card", "social_security", 2, "population_registry", False,
        "electronic_record", "data", "social_security_register", "social security registry",
        _l("Social security card")),
    VerificationMethod(
        "carrier_three_element", "carrier", 3, "population_registry", True,
        "electronic_record", "data", "mobile_operator_register", "mobile carrier",
        _l("Mobile carrier: name, ID number and phone")),
    VerificationMethod(
        "in_person", "counter", 4, None, True, "document", "vpip", "idcard",
        "government service counter", _l("In person at a service counter")),
    VerificationMethod(
        "card_read", "kiosk", 2, "population_registry", True, "document", "vcrypt", "idcard",
        "government service kiosk", _l("Card read at a self-service kiosk"),
        {"resident_id": "idcard", "social_security": "social_security_card"}),
)}
#: What a population-registry mismatch (or unknown number) tells the user.
POPULATION_MISMATCH = _l("The name and ID number do not match the population registry.")
#: Why a number cannot be taken online: its holder proved possession of it.
HELD_WITH_POSSESSION = _l(
    "This ID number is verified for another account with a proof of possession (card, face, "
    "mobile carrier or service counter). If it is yours, bring your ID card to a service "
    "counter: the number can be moved to your account there.")
#: Why an account cannot take a number: it is verified with its own.
OTHER_NUMBER = _l("This account is already verified with another ID number.")
#: Built-in level names, lowest first (``assurance.level_names`` overrides).
LEVEL_NAMES = (_l("Registered"), _l("Real-name verified"), _l("Strongly verified"),
               _l("Verified in person"))


class VerificationUnavailableError(Exception):
    """The verification service is unavailable, try again later. Nothing was
    recorded and the level is unchanged."""


class VerificationFailedError(Exception):
    """The registry answered, and the answer does not verify the account.

    :ivar code: the registry's answer (``mismatch``, ``lost``, ``fail``...)
        or ``prerequisite`` when an earlier level is missing.
    :ivar message: what the user can do, translated when rendered.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message


class PossessionProofRequiredError(Exception):
    """The population registry matched the name and ID number, and another
    account holds the number by knowledge only: the match is kept as the
    account's pending :class:`IdentityClaim` (``assurance.claim_ttl``
    seconds) until a face comparison or carrier check proves possession and
    takes the number over, or a counter does."""


class VerificationLimitError(Exception):
    """Too many checks for this account or address; ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def evidence_of(account: Account) -> list[VerificationEvidence]:
    """Every verification of ``account``, newest first."""
    return evidence_rows(account.id)


def is_live(item: VerificationEvidence, now: datetime | None = None) -> bool:
    """True when ``item`` is a success that has neither expired nor been revoked."""
    now = now or utcnow()
    return (item.level > 0 and item.revoked_at is None
            and (item.expires_at is None or item.expires_at > now))


def level_from(account: Account, evidence: Sequence[VerificationEvidence],
               now: datetime | None = None) -> int:
    """The assurance level (0..4) that ``account`` and its ``evidence`` support.

    Each live item of a method in :data:`METHODS` supports its method's
    level when the method it builds on is live too (a strong proof without
    its registry match proves nothing about whom); the highest counts.
    Without any, a verified phone is level 1.
    """
    now = now or utcnow()
    live = {item.method for item in evidence if item.method in METHODS and is_live(item, now)}
    supported = [METHODS[name].level for name in live
                 if METHODS[name].builds_on is None or METHODS[name].builds_on in live]
    if supported:
        return max(supported)
    return 1 if account.phone_number_verified else 0


@dataclass(frozen=True)
class LiveEvidence:
    """One verification that counts now: a success neither expired nor revoked.

    :ivar id: the evidence row's id.
    :ivar method: its row of :data:`METHODS`.
    :ivar result: the registry's answer (for a card read, the card read:
        ``resident_id`` or ``social_security``).
    :ivar reference: the registry's (or counter's) reference of the check.
    :ivar verified_at: when the check was made, UTC.
    :ivar expires_at: when it stops counting, UTC.
    """

    id: int
    method: VerificationMethod
    result: str
    reference: str
    verified_at: datetime
    expires_at: datetime | None

    @property
    def record_type(self) -> str:
        """The record's or document's type (the card read for a kiosk)."""
        return self.method.document_types.get(self.result, self.method.record_type)


@dataclass(frozen=True)
class Assurance:
    """What the provider can say now about who an account is: the one
    answer the protocol (``acr``, step-up, ``verified_claims``) and the
    console read, instead of evidence rows.

    :ivar level: the identity assurance level, 0..4.
    :ivar evidence: the live evidence, newest first.
    :ivar verified_name: the name the population registry matched, while the
        level is 2 or more; else None.
    :ivar as_of: the instant expiry was judged at, UTC.
    """

    level: int
    evidence: tuple[LiveEvidence, ...]
    verified_name: str | None
    as_of: datetime

    @property
    def possession(self) -> bool:
        """Some live evidence is a proof of possession (:attr:`VerificationMethod.possession`)."""
        return any(item.method.possession for item in self.evidence)

    @property
    def verified_at(self) -> datetime | None:
        """When the newest live evidence was made, UTC; None without any."""
        return max((item.verified_at for item in self.evidence), default=None)


def _assurance(account: Account, evidence: Sequence[VerificationEvidence],
               now: datetime) -> Assurance:
    """The :class:`Assurance` that ``account`` and its ``evidence`` (newest
    first) support at ``now``."""
    level = level_from(account, evidence, now)
    live = tuple(
        LiveEvidence(item.id, METHODS[item.method], item.result, item.reference,
                     item.verified_at, item.expires_at)
        for item in evidence if item.method in METHODS and is_live(item, now))
    return Assurance(level, live, (account.verified_name or None) if level >= 2 else None,
                     now)


def assurance(account: Account | AccountSnapshot) -> Assurance:
    """The account's assurance now, from its live evidence: level, the live
    evidence itself and the verified name. A snapshot brings its evidence;
    an account's is read from the database.

    :returns: a frozen :class:`Assurance`; nothing in it is decrypted (the
        resident ID number stays with ``idp.accounts.service.resident_id``).
    """
    evidence = account.evidence if isinstance(account, AccountSnapshot) else evidence_of(account)
    return _assurance(account, evidence, utcnow())


def assurance_level(account: Account) -> int:
    """The account's current assurance level (0..4): ``assurance(account).level``."""
    return assurance(account).level


def holds_by_knowledge_only(account: Account) -> bool:
    """True when ``account`` holds a resident ID number and none of its live
    evidence is a possession proof (expired or revoked evidence proves
    nothing): a card, face, carrier or counter proof by someone else takes
    the number from it."""
    return bool(account.resident_id_enc) and not assurance(account).possession


def level_name(rt: Runtime, level: int) -> str:
    """The name of ``level`` shown to users (configured, or the built-in one)."""
    if level < 1:
        return str(_l("Not verified"))
    names = rt.settings["assurance"]["level_names"]
    return names[level - 1] if names else str(LEVEL_NAMES[level - 1])


@dataclass(frozen=True)
class AssuranceSummary:
    """What the account console shows: the level and the evidence behind it.

    :ivar level: current level 0..4.
    :ivar acr: its ``acr`` value.
    :ivar evidence: every check, newest first.
    :ivar live: ids of the evidence that counts now.
    """

    level: int
    acr: str
    evidence: list[VerificationEvidence]
    live: frozenset[int]


def summary(rt: Runtime, account: Account) -> AssuranceSummary:
    """The account's level and every check behind it (failed, expired and
    revoked ones too), for display."""
    evidence = evidence_of(account)
    state = _assurance(account, evidence, utcnow())
    return AssuranceSummary(state.level, rt.acr.acr_of(state.level), evidence,
                            frozenset(item.id for item in state.evidence))


def count_check(rt: Runtime, account: Account, ip: str | None) -> None:
    """Count one registry check of ``account`` from ``ip`` against the
    per-account daily and per-IP hourly limits.

    :raises VerificationLimitError: over a limit (nothing is asked then).
    """
    limits = rt.settings["assurance"]
    if ip and rt.store.incr(f"rl:verify:ip:{ip}", 3600) > limits["checks_per_ip_hourly"]:
        raise VerificationLimitError(rt.store.ttl(f"rl:verify:ip:{ip}") or 3600)
    key = f"rl:verify:account:{account.id}"
    if rt.store.incr(key, 86400) > limits["checks_per_account_daily"]:
        raise VerificationLimitError(rt.store.ttl(key) or 86400)


def ask_registry(method: str, registry: _Registry | None,
                 call: Callable[[_Registry], _Answer]) -> _Answer:
    """Run ``call(registry)``, a registry query for the verification
    ``method``; a registry that is not configured, an outage or a refused
    request becomes :class:`VerificationUnavailableError`, never an answer
    about the person.

    :param method: the verification method (a key of :data:`METHODS`), for the log.
    :param registry: the field of ``rt.registries`` that answers ``method``,
        None when it is not configured.
    :returns: what ``call`` returns (a typed registry answer).
    :raises VerificationUnavailableError: as above; nothing was recorded.
    """
    if registry is None:
        raise VerificationUnavailableError(f"no registry is configured for {method}")
    try:
        return call(registry)
    except RegistryUnavailableError as exc:
        raise VerificationUnavailableError(str(exc)) from None
    except GatewayRequestError as exc:
        # Our request was refused (signature, clock, field): a fault here,
        # not an answer about the person.
        log.error("%s check refused by the gateway: %s", method, exc)
        raise VerificationUnavailableError(str(exc)) from None


def _record(rt: Runtime, account: Account, method: str, result: str, success: bool,
            reference: str, ip: str | None, actor: str | None = None,
            verified_at: datetime | None = None) -> VerificationEvidence:
    """Add the evidence of one check and its audit event (not committed);
    ``verified_at`` is when the check was made (default now)."""
    level = METHODS[method].level
    now = verified_at or utcnow()
    days = rt.settings["assurance"]["validity_days"][method]
    item = VerificationEvidence(
        account_id=account.id, method=method, source=METHODS[method].source, result=result,
        level=level if success else 0, reference=reference[:64], verified_at=now,
        expires_at=now + timedelta(days=days) if success else None, actor=actor)
    db.session.add(item)
    record("verification.checked", "success" if success else "failure", account_id=account.id,
           ip=ip, method=method, result=result, reference=reference[:64],
           level=level if success else 0, actor=actor)
    return item


@dataclass(frozen=True)
class IdentityClaim:
    """A population-registry match of a name and ID number that another
    account holds by knowledge only, kept in the store (the number
    encrypted) for ``assurance.claim_ttl`` seconds, bound to the account
    that made it. A face comparison or carrier check made against it takes
    the number over (:func:`verify_face`, :func:`verify_carrier`).

    :ivar name: the name the registry matched.
    :ivar number: the 18-character ID number.
    :ivar reference: the registry's reference of the match.
    :ivar checked_at: when the registry matched, UTC.
    """

    name: str
    number: str
    reference: str
    checked_at: datetime


def _claim_key(account: Account) -> str:
    return f"verify:claim:{account.id}"


def pending_claim(rt: Runtime, account: Account) -> IdentityClaim | None:
    """The account's live :class:`IdentityClaim`, or None (none made, expired,
    or the account is verified with a number by now)."""
    if account.resident_id_enc:
        return None
    data = rt.store.get(_claim_key(account))
    if data is None:
        return None
    try:
        number = rt.pii.decrypt("resident_id", data["number"])
    except PiiError:
        return None
    return IdentityClaim(data["name"], number, data["reference"],
                         datetime.fromisoformat(data["checked_at"]))


def _other_holder(rt: Runtime, account: Account, number: str) -> Account | None:
    """The account other than ``account`` that holds ``number``, if any."""
    holder = accounts.find_by_resident_id(rt, number)
    return holder if holder is not None and holder.id != account.id else None


def _normalised(name: str, id_number: str) -> tuple[str, str]:
    """``(name, number)`` normalised; raises for an invalid number or name."""
    number = parse_resident_id(id_number).number
    name = normalize_name(name)
    if not name or len(name) > 128:
        raise accounts.AccountError("name", _l("Give your name as on your ID card."))
    return name, number


def verify_population(rt: Runtime, account: Account, name: str, id_number: str,
                      ip: str | None) -> VerificationEvidence:
    """Level 2: match name and resident ID number in the population registry.

    On a match the number is stored (encrypted, indexed), the verified name
    kept, and an operator's demand for re-verification is met. Not committed:
    the caller commits, the evidence of a failed match too.

    A number another account holds is never given by knowledge: when that
    account holds it by knowledge only, a match becomes the account's
    pending :class:`IdentityClaim` (:class:`PossessionProofRequiredError`);
    when it holds it with a possession proof, the answer points to a
    service counter. The registry is asked before either is said, so only
    someone who knows the right name learns that the number is taken.

    :raises IdentifierError: an invalid ID number (GB 11643).
    :raises accounts.AccountError: the name is empty, the account is
        verified with another number, or the number belongs to another
        account that proved possession of it.
    :raises PossessionProofRequiredError: the claim described above.
    :raises VerificationLimitError: too many checks.
    :raises VerificationUnavailableError: the registry cannot answer.
    :raises VerificationFailedError: no match (evidence of the failure is kept).
    """
    item = _match_population(rt, account, name, id_number, ip, counted=True)
    _population_outcome(rt, account, item)
    return item


def _match_population(rt: Runtime, account: Account, name: str, id_number: str,
                      ip: str | None, *, counted: bool) -> VerificationEvidence:
    """Ask the population registry about ``name`` and ``id_number`` for
    ``account`` and record the answer; on a match bind the number and name
    to the account. Not committed (the claim paths of :func:`_claim`
    raise); :func:`_population_outcome` follows.

    :param counted: False for an operator's check at a counter, which the
        per-account limit of online checks does not apply to, and where a
        number held by any other account is refused
        (``idp.admin.service.take_over_in_person`` decides there).
    :returns: the evidence of the check, a match or not.
    :raises: as :func:`verify_population`, except VerificationFailedError.
    """
    name, number = _normalised(name, id_number)
    # Counted before the ownership checks: their answers tell whether an ID
    # number has an account, and must not be free to ask.
    if counted:
        count_check(rt, account, ip)
    if account.resident_id_enc and accounts.resident_id(rt, account) != number:
        raise accounts.AccountError("resident_id", OTHER_NUMBER)
    holder = _other_holder(rt, account, number)
    if holder is not None and not counted:
        raise accounts.AccountError("resident_id", _l(
            "This ID number is already verified for another account."))
    answer = ask_registry("population_registry", rt.registries.population,
                          lambda registry: registry.verify_person(name, number))
    matched = answer.result is PopulationResult.MATCH
    if matched and holder is not None:
        _claim(rt, account, holder, name, number, answer.reference, ip)
    item = _record(rt, account, "population_registry", answer.result.value, matched,
                   answer.reference, ip)
    if matched:
        accounts.set_resident_id(rt, account, number)
        account.verified_name = name
        account.reverification_required = False
    return item


def _population_outcome(rt: Runtime, account: Account, item: VerificationEvidence) -> None:
    """The outcome of a population check ``item``: a match ends the
    account's pending claim once the caller commits (its number is the
    account's then).

    :raises VerificationFailedError: the registry did not match.
    """
    if not item.level:
        if item.result in (PopulationResult.DECEASED.value, PopulationResult.CANCELLED.value):
            raise VerificationFailedError(item.result, _l(
                "This ID number cannot be verified online. Please visit a service counter."))
        raise VerificationFailedError(item.result, POPULATION_MISMATCH)
    _drop_claim_after_commit(rt, account)


def _drop_claim_after_commit(rt: Runtime, account: Account) -> None:
    """Forget the account's pending claim once its unit of work commits
    (a rolled-back take-over leaves the claim to be proven again)."""
    after_commit(functools.partial(rt.store.delete, _claim_key(account)))


def _claim(rt: Runtime, account: Account, holder: Account, name: str, number: str,
           reference: str, ip: str | None) -> None:
    """The registry matched a number ``holder`` holds: keep the claim (if
    the holder has knowledge only) and raise. Audited: a refusal through the
    deferred writer (it stands whatever the caller does), a claim in the
    caller's transaction."""
    if not holds_by_knowledge_only(holder):
        record_deferred(rt.audit, "identity.claim_refused", "failure", account_id=account.id,
                        ip=ip, holder_id=holder.id, reference=reference[:64],
                        reason="holder_has_possession")
        raise accounts.AccountError("resident_id", HELD_WITH_POSSESSION)
    rt.store.put(_claim_key(account), {
        "number": rt.pii.encrypt("resident_id", number), "name": name,
        "reference": reference[:64], "checked_at": utcnow().isoformat()},
        rt.settings["assurance"]["claim_ttl"])
    record("identity.claimed", account_id=account.id, ip=ip, holder_id=holder.id,
           reference=reference[:64])
    raise PossessionProofRequiredError()


def _require_level_2(rt: Runtime, account: Account) -> tuple[str, str]:
    """The verified name and ID number a strong proof is made for."""
    name = assurance(account).verified_name
    if name is None:
        raise VerificationFailedError("prerequisite", _l(
            "First verify your name and ID number with the population registry."))
    return name, accounts.resident_id(rt, account)


def _possession_subject(rt: Runtime, account: Account) -> tuple[str, str, IdentityClaim | None]:
    """``(name, number, claim)`` a possession proof is made for: the
    account's own verified identity (claim None), or its pending claim on a
    number another account holds by knowledge only.

    :raises VerificationFailedError: neither, or the claimed number's holder
        has proven possession of it meanwhile.
    """
    name = assurance(account).verified_name
    if name is not None:
        return name, accounts.resident_id(rt, account), None
    claim = pending_claim(rt, account)
    if claim is None:
        return (*_require_level_2(rt, account), None)
    holder = _other_holder(rt, account, claim.number)
    if holder is not None and not holds_by_knowledge_only(holder):
        rt.store.delete(_claim_key(account))
        raise VerificationFailedError("held", HELD_WITH_POSSESSION)
    return claim.name, claim.number, claim


def _take_number(rt: Runtime, account: Account, name: str, number: str, reference: str,
                 ip: str | None, *, actor: str, cause: str,
                 checked_at: datetime | None = None) -> VerificationEvidence:
    """Bind ``number`` to ``account``, whose possession of it was just
    proven, with the population-registry match ``reference``: an account
    that holds it by knowledge only loses it first (the one release path,
    ``idp.admin.service.release_identity``). Not committed.

    :param actor: who proved possession (kept in the audit trail).
    :param cause: the proof (``card_read``, ``face_comparison``...).
    :raises accounts.AccountError: the account is verified with another
        number, or the holder has proven possession of it.
    """
    # Imported here: the operators' service builds on this module.
    from idp.admin.service import release_identity

    if account.resident_id_enc and accounts.resident_id(rt, account) != number:
        raise accounts.AccountError("resident_id", OTHER_NUMBER)
    holder = _other_holder(rt, account, number)
    if holder is not None:
        if not holds_by_knowledge_only(holder):
            raise accounts.AccountError("resident_id", HELD_WITH_POSSESSION)
        release_identity(rt, holder, actor, f"possession proven by {cause}", ip=ip)
    accounts.set_resident_id(rt, account, number)
    account.verified_name = name
    account.reverification_required = False
    return _record(rt, account, "population_registry", "match", True, reference, ip,
                   verified_at=checked_at)


def _prove_claim(rt: Runtime, account: Account, claim: IdentityClaim, method: str,
                 ip: str | None) -> None:
    """A possession proof by ``method`` succeeded for ``claim``: the number
    is taken over with the claim's registry match. Not committed."""
    _take_number(rt, account, claim.name, claim.number, claim.reference, ip,
                 actor=f"account:{account.id}", cause=method, checked_at=claim.checked_at)
    rt.store.delete(_claim_key(account))


def verify_face(rt: Runtime, account: Account, liveness_token: str,
                ip: str | None) -> VerificationEvidence:
    """Level 3 by face comparison: the liveness token from the client app is
    compared by the registry's service with the registry photo. No image
    passes through the provider. Made against a pending
    :class:`IdentityClaim`, a pass takes the claimed number over from the
    account that holds it by knowledge only. Not committed: the caller
    commits, the evidence of a failed check too.

    :raises VerificationFailedError: level 2 (or a claim) missing, the
        claimed number's holder proved possession meanwhile, or the face did
        not pass.
    :raises VerificationLimitError, VerificationUnavailableError: as above.
    """
    name, number, claim = _possession_subject(rt, account)
    token = (liveness_token or "").strip()
    if not token or len(token) > 512:
        raise accounts.AccountError("liveness_token", _l("The liveness check did not "
                                                          "return a token; try again."))
    count_check(rt, account, ip)
    answer = ask_registry("face_comparison", rt.registries.face,
                          lambda registry: registry.compare_face(number, name, token))
    passed = answer.decision is FaceDecision.PASS
    item = _record(rt, account, "face_comparison", answer.decision.value, passed,
                   answer.reference, ip)
    if passed and claim is not None:
        _prove_claim(rt, account, claim, "face_comparison", ip)
    if answer.decision is FaceDecision.RETRY:
        raise VerificationFailedError("retry", _l(
            "The liveness check was not conclusive. Try again in good light."))
    if not passed:
        raise VerificationFailedError("fail", _l(
            "Your face did not match the registry photo."))
    return item


def card_check_refusal(account: Account, amr: Sequence[str]) -> str | None:
    """Why the social security card check cannot be made now, or None.

    The number printed on a card is knowledge, not possession: it proves
    nothing about a person who holds the card already. So it is refused in
    a session opened with a card at a kiosk (``amr`` ``hwk``: whoever holds
    a card, stolen or not, gets such a session), and for an account whose
    identity rests on a card read at a kiosk (the typed number would lift
    that card's holder to level 3 on the card alone).

    :param amr: the ``amr`` of the session asking (RFC 8176).
    """
    if "hwk" in amr:
        return str(_l("The card number cannot be checked in a session opened with a card at "
                      "a kiosk. Sign in with your password on your own device to add the "
                      "card."))
    if any(item.method.name == "card_read" for item in assurance(account).evidence):
        return str(_l("Your identity was proven with a card read at a kiosk: typing a card's "
                      "number proves nothing more. Use the face comparison or your mobile "
                      "carrier."))
    return None


def verify_card(rt: Runtime, account: Account, card_number: str, ip: str | None, *,
                amr: Sequence[str]) -> VerificationEvidence:
    """The social security card: it must be active and issued to the
    account's ID number. The card number is then stored (encrypted,
    indexed) and becomes a login identifier. Not committed: the caller
    commits, the evidence of a failed check too.

    A typed card number is knowledge (issue 7: a stolen card must not reach
    level 3): the evidence supports level 2, never takes a number over from
    another account, and :func:`card_check_refusal` says when it is refused.

    :param amr: the ``amr`` of the session the check is made in.
    :raises IdentifierError: not a card number.
    :raises accounts.AccountError: the card belongs to another account.
    :raises VerificationFailedError: refused (``kiosk_session``), level 2
        missing, or the card is not active.
    :raises VerificationLimitError, VerificationUnavailableError: as above.
    """
    refusal = card_check_refusal(account, amr)
    if refusal is not None:
        raise VerificationFailedError("card_knowledge", refusal)
    if assurance_level(account) < 2 and pending_claim(rt, account) is not None:
        raise VerificationFailedError("prerequisite", _l(
            "A card's number is printed on it and proves nothing about who holds it. Take "
            "the ID number over with the face comparison or your mobile carrier."))
    _name, number = _require_level_2(rt, account)
    card = parse_card_number(card_number)
    count_check(rt, account, ip)
    holder = accounts.find_by_card_number(rt, card)
    if holder is not None and holder.id != account.id:
        raise accounts.AccountError("card_number", _l(
            "This card is already registered to another account."))
    answer = ask_registry("social_security_card", rt.registries.social_security,
                          lambda registry: registry.check_card(number, card))
    active = answer.status is CardStatus.ACTIVE
    item = _record(rt, account, "social_security_card", answer.status.value, active,
                   answer.reference, ip)
    if active:
        accounts.set_card_number(rt, account, card)
    if answer.status is CardStatus.NOT_FOUND:
        raise VerificationFailedError("not_found", _l(
            "No card with this number was issued to your ID number."))
    if not active:
        raise VerificationFailedError(answer.status.value, _l(
            "This card is reported lost, suspended or cancelled."))
    return item


def carrier_check_refusal(rt: Runtime, account: Account) -> str | None:
    """Why the carrier check cannot be made now, or None.

    It proves that whoever signed in holds the account's phone (and that the
    phone is registered to the person). Within the hold after a password
    reset by SMS code (``session.reauth_hold_after_sms_reset``,
    :func:`idp.accounts.recovery.sms_reset_hold_until`) the password and the
    session prove that phone too and nothing more, so a phone thief would
    lift their session to level 3 with the phone alone (NIST SP 800-63B
    §6.1.2.3: whoever lost a factor proves their identity again, which the
    phone that replaced it cannot do). The face comparison and a counter
    still can.

    :returns: a lazily translated message with the hold's end.
    """
    until = sms_reset_hold_until(rt, account)
    if until is None:
        return None
    return _l("Your password was reset by a text message, and the mobile carrier check "
              "proves only that you hold that phone: it is possible again from %(until)s. "
              "Until then, use the face comparison, or bring your ID card to a service "
              "counter.", until=LocalTime(from_epoch(until)))


def verify_carrier(rt: Runtime, account: Account, ip: str | None) -> VerificationEvidence:
    """Level 3 by the carrier three-element check: the account's verified
    mobile number is registered at its carrier to the verified name and ID
    number. Made against a pending :class:`IdentityClaim`, a match takes
    the claimed number over from the account that holds it by knowledge
    only. Refused while :func:`carrier_check_refusal` says so. Not
    committed: the caller commits, the evidence of a failed check too.

    :raises VerificationFailedError: refused (``reset_hold``), level 2 (or
        a claim) or a verified phone missing, the claimed number's holder
        proved possession meanwhile, or the carrier does not confirm.
    :raises VerificationLimitError, VerificationUnavailableError: as above.
    """
    refusal = carrier_check_refusal(rt, account)
    if refusal is not None:
        raise VerificationFailedError("reset_hold", refusal)
    name, number, claim = _possession_subject(rt, account)
    phone = accounts.phone_number(rt, account)
    if not phone or not account.phone_number_verified:
        raise VerificationFailedError("prerequisite", _l(
            "First confirm a mobile number with a text message code."))
    count_check(rt, account, ip)
    answer = ask_registry("carrier_three_element", rt.registries.carrier,
                          lambda registry: registry.verify_phone(name, number, phone))
    matched = answer.result is CarrierResult.MATCH
    item = _record(rt, account, "carrier_three_element", answer.result.value, matched,
                   answer.reference, ip)
    if matched and claim is not None:
        _prove_claim(rt, account, claim, "carrier_three_element", ip)
    if not matched:
        raise VerificationFailedError(answer.result.value, _l(
            "Your mobile carrier does not have this number registered to your name and "
            "ID number."))
    return item


def verify_card_read(rt: Runtime, account: Account, *, name: str, id_number: str,
                     card_type: str, card_number: str | None, population_reference: str,
                     card_reference: str, kiosk: str, ip: str | None) -> VerificationEvidence:
    """Level 2 with possession: a card a kiosk read (the card in the
    person's hand; the population registry matched its name and number and,
    for a social security card, its registry found it active), linked to
    ``account``, whose owner signed in after the read. The number is taken
    from an account that holds it by knowledge only; the account gets the
    population match and the card read (method ``card_read``, source
    ``kiosk``) as evidence, and a social security card's number as a login
    identifier. Not committed.

    :param card_type: ``resident_id`` or ``social_security`` (the result kept).
    :param population_reference: the population registry's reference of
        the kiosk's check; ``card_reference`` the card's (the same for a
        resident ID card).
    :param kiosk: the kiosk's client_id (kept as the evidence's actor).
    :raises IdentifierError: an invalid number (the kiosk checked it).
    :raises accounts.AccountError: the account is verified with another
        number, or another account proved possession of this one.
    """
    name, number = _normalised(name, id_number)
    _take_number(rt, account, name, number, population_reference, ip,
                 actor=f"kiosk:{kiosk}", cause="card_read")
    item = _record(rt, account, "card_read", card_type, True, card_reference, ip, actor=kiosk)
    if card_number:
        card = parse_card_number(card_number)
        if accounts.find_by_card_number(rt, card) is None:
            accounts.set_card_number(rt, account, card)
    _drop_claim_after_commit(rt, account)
    return item


def verify_in_person(rt: Runtime, account: Account, name: str, id_number: str,
                     reference: str, operator: str) -> VerificationEvidence:
    """Level 4: an operator saw the person and their ID card at a counter.
    The population registry must match too: both are recorded in one
    transaction (a failed match alone is kept when the caller commits).
    Not committed.

    :param reference: the counter's reference (ticket or case number).
    :param operator: who made the check (kept with the evidence).
    :raises IdentifierError, accounts.AccountError, VerificationUnavailableError,
        VerificationFailedError: as :func:`verify_population`.
    """
    reference = (reference or "").strip()
    if not reference:
        raise accounts.AccountError("reference", _l("Give the counter's reference."))
    item = match = _match_population(rt, account, name, id_number, None, counted=False)
    if match.level:
        item = _record(rt, account, "in_person", "match", True, reference, None,
                       actor=operator)
    _population_outcome(rt, account, match)  # raises for a failed match
    return item


def revoke_evidence(account: Account, reason: str,
                    methods: Sequence[str] | None = None) -> int:
    """Stop live evidence of ``account`` counting (not committed): of the
    given ``methods``, or all of it, so that the level falls to 1 (or 0
    without a verified phone). This is the one door of every revocation:
    the account's entity representations end here when it falls below the
    level they need (``idp.accounts.entities.end_unsupported_representations``).

    :returns: how many were revoked.
    """
    # Imported here: entities build on this module.
    from idp.accounts.entities import end_unsupported_representations

    query = (update(VerificationEvidence)
             .where(VerificationEvidence.account_id == account.id,
                    VerificationEvidence.level > 0, VerificationEvidence.revoked_at.is_(None))
             .values(revoked_at=utcnow(), revoked_reason=reason))
    if methods is not None:
        query = query.where(VerificationEvidence.method.in_(methods))
    revoked = db.session.execute(query).rowcount
    if revoked:
        mark_changed(db.session(), account.id)
        end_unsupported_representations(account, reason)
    return revoked
