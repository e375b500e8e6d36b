"""What operators do to accounts: suspend and reinstate them, demand that
an identity be verified again, record an in-person verification, remove a
second factor the person lost or that is not theirs, review accounts whose
ID number was released. Each action is audited with the operator's name,
and those that stop an account end its SSO sessions and revoke its grants
at once.

:func:`release_identity` is also the one path by which an ID number leaves
an account that held it by knowledge only when someone proves possession
of it (a kiosk card read, a face or carrier check against a claim,
``idp.accounts.verification``)."""

from __future__ import annotations

from sqlalchemy import select

from connectors.registries import PopulationResult
from idp import sessions
from idp.accounts.identifiers import normalize_name, parse_resident_id
from idp.accounts.models import Account, VerificationEvidence
from idp.accounts.notify import notify_after_commit
from idp.accounts.service import find_by_resident_id
from idp.accounts.verification import (
    POPULATION_MISMATCH,
    VerificationFailedError,
    ask_registry,
    revoke_evidence,
    verify_in_person,
)
from idp.audit.service import record
from idp.authn import totp
from idp.extensions import db
from idp.runtime import Runtime
from idp.timeutil import utcnow

__all__ = ["NoSecondFactorError", "NotFlaggedError", "clear_review", "flagged_for_review",
           "reinstate", "release_identity", "require_reverification", "reset_second_factor",
           "suspend", "take_over_in_person", "verify_in_person"]

#: ``accounts.review_reason`` of an account whose ID number was released.
REVIEW_IDENTITY_RELEASED = "identity_released"


class NoSecondFactorError(Exception):
    """The account has no authenticator app and no recovery codes to remove."""


class NotFlaggedError(Exception):
    """The account is not flagged for review."""


def _stop_tokens(rt: Runtime, account: Account, reason: str) -> int:
    """End the account's SSO sessions and revoke its grants (not committed).

    :returns: how many grants were revoked.
    """
    return sessions.end_all(rt, account, reason, revoke_grants=True).grants_revoked


def suspend(rt: Runtime, account: Account, operator: str, reason: str) -> int:
    """Suspend ``account``: no login, no tokens; live tokens stop working.

    :returns: how many grants were revoked.
    """
    account.status = "suspended"
    record("account.suspended", account_id=account.id, actor=operator, reason=reason)
    return _stop_tokens(rt, account, "account_suspended")


def logout_everywhere(rt: Runtime, account: Account, operator: str, *,
                      revoke_grants: bool) -> sessions.EndedSessions:
    """End every SSO session of ``account`` for an operator (``idp users
    logout``): each portal of each session is told (single logout); with
    ``revoke_grants`` the relying parties' tokens stop too. Audits
    ``sessions.ended`` (not committed).
    """
    ended = sessions.end_all(rt, account, "operator_logout", revoke_grants=revoke_grants)
    record("sessions.ended", account_id=account.id, actor=operator, reason="operator_logout",
           sessions=ended.ended, grants_revoked=ended.grants_revoked)
    return ended


def reinstate(rt: Runtime, account: Account, operator: str) -> None:
    """Lift a suspension (not committed)."""
    account.status = "active"
    record("account.reinstated", account_id=account.id, actor=operator)


def require_reverification(rt: Runtime, account: Account, operator: str,
                           reason: str) -> int:
    """Demand that ``account`` verifies its identity again: its evidence
    stops counting and no token is issued (``may_receive_tokens``) until a
    new population-registry match. The user can still sign in to the
    account console to verify.

    :returns: how many grants were revoked.
    """
    account.reverification_required = True
    revoked = revoke_evidence(account, "reverification_required")
    record("account.reverification_required", account_id=account.id, actor=operator,
           reason=reason, evidence_revoked=revoked)
    return _stop_tokens(rt, account, "reverification_required")


def release_identity(rt: Runtime, holder: Account, actor: str, reason: str, *,
                     ip: str | None = None, require_reverification: bool = False) -> int:
    """Take the verified identity (resident ID and card numbers, verified
    name) off ``holder``, because someone proved possession of the number
    (a card read at a kiosk, a face or carrier check, a counter): its
    evidence stops counting (its entity representations end with it), its
    sessions end and its grants are revoked, it is flagged for an
    operator's review (``review_reason`` ``identity_released``), and its
    verified phone is told by text message. The number is then free for
    the person who proved it. Not committed: the message goes after the
    caller's commit (:func:`idp.accounts.notify.notify_after_commit`).

    The holder keeps its account, password and phone (level 1): a stolen
    card taking the number from its owner must not also lock the owner out
    of every service; the review decides.

    :param actor: who proved possession: an operator's name, ``kiosk:<client_id>``
        or ``account:<id>`` (kept in the audit trail).
    :param reason: why (kept in the audit trail).
    :param require_reverification: also issue no tokens until the holder
        verifies again, as whoever it really is (a counter's judgment).
    :returns: how many grants were revoked.
    """
    holder.resident_id_enc = holder.resident_id_index = None
    holder.card_number_enc = holder.card_number_index = None
    holder.verified_name = None
    if require_reverification:
        holder.reverification_required = True
    holder.review_reason = REVIEW_IDENTITY_RELEASED
    holder.review_flagged_at = utcnow()
    revoked = revoke_evidence(holder, "identity_released")
    record("account.identity_released", account_id=holder.id, ip=ip, actor=actor,
           reason=reason, evidence_revoked=revoked)
    grants = _stop_tokens(rt, holder, "identity_released")
    notify_after_commit(rt, holder, "identity_released")
    return grants


def flagged_for_review(limit: int = 100) -> list[Account]:
    """Accounts flagged for an operator's review, oldest flag first.

    :param limit: at most this many.
    """
    return list(db.session.scalars(
        select(Account).where(Account.review_reason.is_not(None))
        .order_by(Account.review_flagged_at, Account.id).limit(limit)))


def clear_review(rt: Runtime, account: Account, operator: str, reason: str) -> str:
    """Clear the review flag of ``account`` after an operator looked at it.
    Audited; not committed.

    :returns: the reason it had been flagged for.
    :raises NotFlaggedError: nothing to clear.
    """
    flagged = account.review_reason
    if flagged is None:
        raise NotFlaggedError(account.username)
    account.review_reason = account.review_flagged_at = None
    record("account.review_cleared", account_id=account.id, actor=operator, reason=reason,
           flagged=flagged)
    return flagged


def take_over_in_person(rt: Runtime, account: Account, name: str, id_number: str,
                        reference: str, operator: str) -> VerificationEvidence:
    """An in-person verification that wins over an online one: when the
    population registry confirms ``name`` and ``id_number`` and another
    account holds the number (whatever its evidence: the operator saw the
    person), :func:`release_identity` takes it off that account first,
    which must then verify again; then :func:`verify_in_person`. Nothing is
    released when the registry does not confirm.

    :raises IdentifierError, VerificationUnavailableError,
        VerificationFailedError, AccountError: as :func:`verify_in_person`.
    """
    number = parse_resident_id(id_number).number
    answer = ask_registry("population_registry", rt.registries.population,
                          lambda registry: registry.verify_person(normalize_name(name), number))
    if answer.result is not PopulationResult.MATCH:
        raise VerificationFailedError(answer.result.value, POPULATION_MISMATCH)
    holder = find_by_resident_id(rt, number)
    if holder is not None and holder.id != account.id:
        release_identity(rt, holder, operator, f"in-person verification {reference}",
                         require_reverification=True)
    return verify_in_person(rt, account, name, number, reference, operator)


def reset_second_factor(rt: Runtime, account: Account, operator: str, reason: str) -> int:
    """Remove the authenticator app and recovery codes of ``account`` for a
    person an operator checked in person at a service counter (NIST SP
    800-63B §6.1.2.3): they lost both, or the authenticator is not theirs.
    Every SSO session ends and every grant is revoked (they may rest on that
    authenticator); the wait after an SMS password reset ends too, so the
    person can set up a new authenticator with their password and phone at
    once (an operator must set one up at the next sign-in with the
    password). Audited (``totp.reset``) with the operator and reason; the
    verified phone is told (template ``authenticator_reset``).

    :returns: how many grants were revoked.
    :raises NoSecondFactorError: nothing to remove, not even an authenticator
        whose set-up was started (nothing changes).
    """
    if totp.credential(account) is None and not totp.remaining_recovery_codes(account):
        raise NoSecondFactorError(account.username)
    totp.remove(account, operator, reason)
    account.password_reset_by_sms_at = None
    revoked = _stop_tokens(rt, account, "second_factor_reset")
    notify_after_commit(rt, account, "authenticator_reset")
    return revoked
