"""Step-up: what a login lacks for the level a client asks for, and adding
a factor to the SSO session.

A login below the requested level is raised either by verifying the
identity further (the account console) or by adding an authentication
factor, whichever is short; if neither can reach the level the request
ends with ``unmet_authentication_requirements``.
"""

from __future__ import annotations

from dataclasses import dataclass

from idp.accounts.models import Account
from idp.accounts.verification import assurance_level
from idp.audit.service import record
from idp.extensions import db
from idp.oidc.acr import combine_amr
from idp.runtime import Runtime
from idp.sessions import SsoSession, save_session
from idp.timeutil import epoch

#: The highest level a user can reach by verifying online (level 4 needs a counter).
ONLINE_VERIFICATION_MAX = 3


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
    """

    required: int
    level: int
    cap: int
    achieved: int
    reverify: bool
    verification_possible: bool
    factor_cap: int

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
    """Compare the login of ``account`` by methods ``amr`` with ``required``."""
    level = assurance_level(account)
    cap = rt.acr.method_cap(amr)
    reverify = account.reverification_required
    return StepUpState(
        required=max(required, 2) if reverify else required, level=level, cap=cap,
        achieved=min(level, cap), reverify=reverify,
        verification_possible=rt.gateway is not None,
        factor_cap=max(cap, rt.acr.multi_factor))


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
