"""Step-up: what a login lacks for the level a client asks for, and adding
a factor to the SSO session.

A login below the requested level is raised either by verifying the
identity further (the account console) or by adding an authentication
factor, whichever is short; if neither can reach the level the request
ends with ``unmet_authentication_requirements``.

For ``session.reauth_hold_after_sms_reset`` seconds after a password reset
by SMS code (an account without an authenticator app,
:func:`idp.authn.service.sms_reset_hold_until`), the password and a code to
the verified phone prove only that phone: neither is a second factor to the
other, or whoever stole the phone would reach the multi-factor level with
it alone. (NIST SP 800-63B §6.1.2.3: whoever lost a factor needed for
multi-factor authentication proves their identity again; a password set by
the phone is bound by that one remaining factor, not a second one.)
"""

from __future__ import annotations

from dataclasses import dataclass

from idp.accounts.models import Account
from idp.accounts.verification import assurance_level
from idp.audit.service import record
from idp.authn.acr import combine_amr
from idp.authn.service import sms_reset_hold_until
from idp.extensions import db
from idp.runtime import Runtime
from idp.sessions import SsoSession, save_session
from idp.timeutil import epoch

#: The highest level a user can reach by verifying online (level 4 needs a counter).
ONLINE_VERIFICATION_MAX = 3
#: The factors a step-up adds (RFC 8176): a code sent to the verified phone,
#: and the password (after an SMS sign-in). After a password reset by SMS
#: code both prove only that phone.
STEP_UP_FACTORS = ("sms", "pwd")


class FactorHeldError(Exception):
    """The password and SMS codes prove only the phone for now (the hold
    after a password reset by SMS code, until ``StepUpState.hold_until``):
    no step-up factor is accepted."""


@dataclass(frozen=True)
class StepUpState:
    """How a login stands against a required level.

    :ivar required: the level needed (at least 2 while re-verification is due).
    :ivar level: the account's identity assurance level.
    :ivar cap: the highest level the session's methods support.
    :ivar achieved: ``min(level, cap)``.
    :ivar reverify: an operator demands re-verification first.
    :ivar verification_possible: the registries can be reached (a gateway
        is configured), so the identity can be verified online.
    :ivar factor_cap: the cap once another factor is added.
    :ivar factors: the factors (:data:`STEP_UP_FACTORS`) a step-up may add
        now: those the login has not used, none during the hold.
    :ivar hold_until: Unix seconds when the hold after a password reset by
        SMS code ends, while it keeps this login from adding a factor; else
        None.
    """

    required: int
    level: int
    cap: int
    achieved: int
    reverify: bool
    verification_possible: bool
    factor_cap: int
    factors: tuple[str, ...] = ()
    hold_until: int | None = None

    @property
    def met(self) -> bool:
        """The login may be used for the request as it is."""
        return self.achieved >= self.required and not self.reverify

    @property
    def needs_verification(self) -> bool:
        """The identity must be verified (further) first."""
        return self.level < self.required or self.reverify

    @property
    def needs_factor(self) -> bool:
        """Another authentication factor must be added."""
        return self.cap < self.required

    @property
    def reachable(self) -> bool:
        """Some step-up can meet the requirement."""
        if self.needs_verification and (not self.verification_possible
                                        or self.required > ONLINE_VERIFICATION_MAX):
            return False
        return not self.needs_factor or self.factor_cap >= self.required


def evaluate(rt: Runtime, account: Account, amr: list[str], required: int) -> StepUpState:
    """Compare the login of ``account`` by methods ``amr`` with ``required``.

    During the hold after a password reset by SMS code, a login by the
    password or by an SMS code may add no factor (see the module): the
    other one proves the same phone. A kiosk card read may (the card is
    not the phone)."""
    level = assurance_level(account)
    cap = rt.acr.method_cap(amr)
    reverify = account.reverification_required
    until = sms_reset_hold_until(rt, account)
    held = until is not None and any(m in STEP_UP_FACTORS for m in amr)
    return StepUpState(
        required=max(required, 2) if reverify else required, level=level, cap=cap,
        achieved=min(level, cap), reverify=reverify,
        verification_possible=rt.gateway is not None,
        factor_cap=max(cap, rt.acr.multi_factor),
        factors=() if held else tuple(m for m in STEP_UP_FACTORS if m not in amr),
        hold_until=until if held else None)


def check_factor(state: StepUpState, session: SsoSession, method: str,
                 ip: str | None) -> None:
    """Refuse ``method`` as a further factor of ``session`` while the hold
    after a password reset by SMS code lasts (``state.hold_until``), before
    a code is sent or anything is checked. A refusal is audited
    (``login.failure``, ``reason`` ``reset_hold``) and committed.

    :raises FactorHeldError: the hold refuses it.
    """
    if state.hold_until is None:
        return
    record("login.failure", "failure", account_id=session.account_id, ip=ip, sid=session.sid,
           reason="reset_hold", step_up=True, method=method)
    db.session.commit()
    raise FactorHeldError(session.sid)


def add_factor(rt: Runtime, session: SsoSession, method: str, ip: str | None) -> SsoSession:
    """Record a further factor ``method`` (RFC 8176: ``otp``, ``sms``,
    ``pwd``) proven in ``session``: its ``amr`` gains the method (and
    ``mfa``), its ``auth_time`` becomes now. Audits ``login.step_up`` and commits.

    :returns: the updated session.
    """
    session.amr = combine_amr(session.amr, method)
    session.auth_time = epoch()
    save_session(rt.store, session)
    record("login.step_up", account_id=session.account_id, ip=ip, sid=session.sid,
           method=method, amr=session.amr)
    db.session.commit()
    return session
