"""Step-up: what a login lacks for the level a client asks for.

A login below the requested level is raised either by verifying the
identity further (the account console) or by adding an authentication
factor, whichever is short; if neither can reach the level the request
ends with ``unmet_authentication_requirements``. The factors a step-up
offers are the rows of :data:`idp.oidc.acr.METHODS` with a
``step_up_credential`` (:func:`step_up_factors`). Proving a factor and
adding it to the SSO session is the login pages' work, which calls this
module and is never called by it.

For ``session.reauth_hold_after_sms_reset`` seconds after a password reset
by SMS code (an account without an authenticator app,
:func:`idp.accounts.recovery.sms_reset_hold_until`), the password and a
code to the verified phone prove only that phone: neither is a second
factor to the other, or whoever stole the phone would reach the
multi-factor level with it alone (NIST SP 800-63B §6.1.2.3: whoever lost a
factor needed for multi-factor authentication proves their identity again;
a password set by the phone is bound by that one remaining factor).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from idp.accounts.models import Account
from idp.accounts.recovery import sms_reset_hold_until
from idp.accounts.snapshots import AccountSnapshot
from idp.accounts.verification import assurance
from idp.oidc.acr import METHODS
from idp.runtime import Runtime

#: The highest level a user can reach by verifying online (level 4 needs a counter).
ONLINE_VERIFICATION_MAX = 3

#: Whether an account holds what a step-up factor proves, by the
#: ``step_up_credential`` of its row in :data:`idp.oidc.acr.METHODS`. A code
#: to the phone needs the SMS gateway too.
CREDENTIALS: dict[str, Callable[[Runtime, Account], bool]] = {
    "password": lambda rt, account: account.has_password,
    "verified_phone": lambda rt, account: (account.phone_number_verified
                                           and rt.registries.sms is not None),
}


@dataclass(frozen=True)
class StepUpState:
    """How a login stands against a required level.

    :ivar required: the level needed (at least 2 while re-verification is due).
    :ivar level: the account's identity assurance level.
    :ivar cap: the highest level the session's methods support.
    :ivar achieved: ``min(level, cap)``.
    :ivar reverify: an operator demands re-verification first.
    :ivar verification_possible: the population registry is configured, so
        the identity can be verified online.
    :ivar factor_cap: the cap once another factor is added.
    :ivar factors: the ``amr`` values a step-up may add now
        (:func:`step_up_factors`); none during the hold.
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


def step_up_factors(rt: Runtime, account: Account, amr: Sequence[str]) -> tuple[str, ...]:
    """The factors a step-up may add to a login of ``account`` by ``amr``:
    the step-up factors of :data:`idp.oidc.acr.METHODS` the login has not
    used and the account holds the credential of (:data:`CREDENTIALS`), in
    the table's order.

    :returns: RFC 8176 ``amr`` values, such as ``("sms", "pwd")``.
    """
    return tuple(m.amr for m in METHODS
                 if m.step_up_credential is not None and m.amr not in amr
                 and CREDENTIALS[m.step_up_credential](rt, account))


def evaluate(rt: Runtime, account: Account | AccountSnapshot, amr: list[str],
             required: int) -> StepUpState:
    """Compare the login of ``account`` by methods ``amr`` with ``required``
    (a level 0..4, :func:`idp.oidc.authorize.required_level`).

    During the hold after a password reset by SMS code, a login by a
    step-up factor (the password or an SMS code) may add none (see the
    module): the other proves the same phone. A kiosk card read may (the
    card is not the phone)."""
    # The snapshot's evidence: no query of the evidence on a single sign-on hop.
    snapshot = (account if isinstance(account, AccountSnapshot)
                else rt.accounts.get(account.id))
    level = assurance(snapshot).level if snapshot is not None else 0
    cap = rt.acr.method_cap(amr)
    reverify = account.reverification_required
    factors = step_up_factors(rt, account, amr)
    until = sms_reset_hold_until(rt, account)
    held = until is not None and any(
        m.amr in amr for m in METHODS if m.step_up_credential is not None)
    return StepUpState(
        required=max(required, 2) if reverify else required, level=level, cap=cap,
        achieved=min(level, cap), reverify=reverify,
        verification_possible=rt.registries.population is not None,
        factor_cap=max(cap, rt.acr.multi_factor),
        factors=() if held else factors, hold_until=until if held else None)
