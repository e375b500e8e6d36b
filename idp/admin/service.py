"""What operators do to accounts: suspend and reinstate them, demand that
an identity be verified again, record an in-person verification. Each
action is audited with the operator's name, and those that stop an
account end its SSO sessions and revoke its grants at once."""

from __future__ import annotations

from idp.accounts.models import Account
from idp.accounts.verification import revoke_evidence, verify_in_person
from idp.audit.service import record
from idp.extensions import db
from idp.oidc.grants import revoke_account_grants
from idp.runtime import Runtime

__all__ = ["reinstate", "require_reverification", "suspend", "verify_in_person"]


def _stop_tokens(rt: Runtime, account: Account, reason: str) -> int:
    """End the account's SSO sessions and revoke its grants (commits)."""
    account.end_all_sessions()
    db.session.commit()
    return revoke_account_grants(rt, account.id, reason)


def suspend(rt: Runtime, account: Account, operator: str, reason: str) -> int:
    """Suspend ``account``: no login, no tokens; live tokens stop working.

    :returns: how many grants were revoked.
    """
    account.status = "suspended"
    record("account.suspended", account_id=account.id, actor=operator, reason=reason)
    return _stop_tokens(rt, account, "account_suspended")


def reinstate(rt: Runtime, account: Account, operator: str) -> None:
    """Lift a suspension. Commits."""
    account.status = "active"
    record("account.reinstated", account_id=account.id, actor=operator)
    db.session.commit()


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
