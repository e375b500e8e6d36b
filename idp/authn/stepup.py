"""Step-up, the login's part: adding a further factor to the SSO session.

What a login lacks and which factors a step-up offers is the protocol's
rule (:mod:`idp.oidc.stepup`); this refuses a factor during the hold after
a password reset by SMS code (:mod:`idp.accounts.recovery`) and records a
factor once proven.
"""

from __future__ import annotations

from idp.audit.service import record, record_deferred
from idp.oidc.acr import combine_amr
from idp.oidc.stepup import StepUpState
from idp.runtime import Runtime
from idp.sessions import SsoSession, save_session
from idp.timeutil import epoch


class FactorHeldError(Exception):
    """The password and SMS codes prove only the phone for now (the hold
    after a password reset by SMS code, until ``StepUpState.hold_until``):
    no step-up factor is accepted."""


def check_factor(rt: Runtime, state: StepUpState, session: SsoSession, method: str,
                 ip: str | None) -> None:
    """Refuse ``method`` as a further factor of ``session`` while the hold
    after a password reset by SMS code lasts (``state.hold_until``), before
    a code is sent or anything is checked. A refusal is audited
    (``login.failure``, ``reason`` ``reset_hold``) through the deferred
    writer, so it stands whatever the caller does with its transaction.

    :raises FactorHeldError: the hold refuses it.
    """
    if state.hold_until is None:
        return
    record_deferred(rt.audit, "login.failure", "failure",
                    account_id=session.account_id, ip=ip, sid=session.sid,
                    reason="reset_hold", step_up=True, method=method)
    raise FactorHeldError(session.sid)


def add_factor(rt: Runtime, session: SsoSession, method: str, ip: str | None) -> SsoSession:
    """Record a further factor ``method`` (RFC 8176: ``otp``, ``sms``,
    ``pwd``) proven in ``session``: its ``amr`` gains the method (and
    ``mfa``), its ``auth_time`` becomes now. Audits ``login.step_up`` (not
    committed).

    :returns: the updated session.
    """
    session.amr = combine_amr(session.amr, method)
    session.auth_time = epoch()
    save_session(rt.store, session)
    record("login.step_up", account_id=session.account_id, ip=ip, sid=session.sid,
           method=method, amr=session.amr)
    return session
