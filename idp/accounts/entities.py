"""Legal entities and their agents: an account strongly verified (level 3)
proves that it is the legal representative of an enterprise or
institution, by the legal-entity registry matching the credit code, the
entity's name and the account's verified name and ID number (a
four-element check). The entity is then at level 2 (USCC matched in the
legal-entity registry) until the match expires, and the account is its
agent.

Level 3, not 2: a name and an ID number are known to many, and whoever
verified them first would otherwise act for the person's enterprise. A
representation ends with the evidence it rested on: when a revocation or a
release (``idp.accounts.verification.revoke_evidence``) takes the account
below level 3, its agents end, and an ended agent acts for nobody until the
representation is confirmed again. Evidence also expires, with no event to
end anything (the carrier check lives 180 days, the entity's match 365), so
an agent acts only while its account is at level 3 now
(:attr:`Representation.active`); verifying strongly again restores it.

Only the legal representative is proven this way; delegated operators and
the enterprise's own certificates belong with enterprise login.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from connectors.registries import LegalEntityResult
from idp.accounts import service as accounts
from idp.accounts.identifiers import normalize_name, parse_uscc
from idp.accounts.models import Account, Agent, LegalEntity
from idp.accounts.verification import (
    VerificationFailedError,
    ask_registry,
    assurance_level,
    count_check,
)
from idp.audit.service import record
from idp.extensions import db
from idp.runtime import Runtime
from idp.timeutil import utcnow

ROLE_LEGAL_REPRESENTATIVE = "legal_representative"
#: The assurance level an account needs to become (and stay) a legal representative.
REPRESENTATIVE_LEVEL = 3
_FAILURES = {
    LegalEntityResult.MISMATCH: _l("The name does not match the credit code in the "
                                   "legal-entity registry."),
    LegalEntityResult.NOT_FOUND: _l("The legal-entity registry has no entity with this "
                                    "credit code."),
    LegalEntityResult.REVOKED: _l("This entity's licence is revoked or it is deregistered."),
    LegalEntityResult.REPRESENTATIVE_MISMATCH: _l(
        "The legal-entity registry does not have you as this entity's legal representative."),
}


@dataclass(frozen=True)
class Representation:
    """An entity the account acts for.

    :ivar entity: the legal entity.
    :ivar agent: the account's role for it (``agent.ended_at`` and
        ``ended_reason`` set when it ended).
    :ivar level: the entity's level for this agent now: 2 while its
        registry match is live and the agent has not ended, else 0.
    :ivar account_level: the agent's account's assurance level now.
    """

    entity: LegalEntity
    agent: Agent
    level: int
    account_level: int

    @property
    def lapsed(self) -> bool:
        """True when the agent has not ended but its account is below
        :data:`REPRESENTATIVE_LEVEL` now (its level 3 evidence expired): it
        acts for nobody until the account is strongly verified again."""
        return self.agent.ended_at is None and self.account_level < REPRESENTATIVE_LEVEL

    @property
    def active(self) -> bool:
        """True when the account acts for the entity now: the agent has not
        ended, the entity's match is live, and the account is at
        :data:`REPRESENTATIVE_LEVEL` now (a representation ends with the
        evidence it rested on, expired evidence too)."""
        return self.agent.ended_at is None and self.level > 0 and not self.lapsed


def entity_level(entity: LegalEntity, now: datetime | None = None) -> int:
    """2 while the entity's registry match has not expired, else 0."""
    return 2 if entity.expires_at > (now or utcnow()) else 0


def representations(account: Account) -> list[Representation]:
    """The entities ``account`` was confirmed for, by name, ended and
    lapsed ones included (so that the console can say so): only those whose
    :attr:`Representation.active` is true act for the entity."""
    now = utcnow()
    rows = db.session.execute(
        select(LegalEntity, Agent).join(Agent, Agent.entity_id == LegalEntity.id)
        .where(Agent.account_id == account.id).order_by(LegalEntity.name)).all()
    level = assurance_level(account) if rows else 0
    return [Representation(entity, agent,
                           0 if agent.ended_at is not None else entity_level(entity, now),
                           level)
            for entity, agent in rows]


def end_representations(account: Account, reason: str) -> int:
    """End every live agent of ``account`` (not committed), each audited
    (``entity.representation_ended``).

    :param reason: why (kept as ``agents.ended_reason``, at most 64 characters).
    :returns: how many ended.
    """
    now = utcnow()
    rows = db.session.execute(
        select(Agent, LegalEntity.uscc).join(LegalEntity, Agent.entity_id == LegalEntity.id)
        .where(Agent.account_id == account.id, Agent.ended_at.is_(None))).all()
    for agent, uscc in rows:
        agent.ended_at, agent.ended_reason = now, reason[:64]
        record("entity.representation_ended", account_id=account.id, uscc=uscc,
               role=agent.role, reason=reason[:64])
    return len(rows)


def end_unsupported_representations(account: Account, reason: str) -> int:
    """End the agents of ``account`` when its level is now below
    :data:`REPRESENTATIVE_LEVEL` (after a revocation; not committed).

    :returns: how many ended.
    """
    if assurance_level(account) >= REPRESENTATIVE_LEVEL:
        return 0
    return end_representations(account, reason)


def verify_representative(rt: Runtime, account: Account, uscc: str, name: str,
                          ip: str | None) -> Representation:
    """Level 2 for an entity, with ``account`` as its legal representative:
    the account must be strongly verified (:data:`REPRESENTATIVE_LEVEL`),
    and the legal-entity registry must match the credit code, the entity's
    name and the account's verified name and ID number. Counted like every
    other registry check; a representation that had ended is confirmed
    again. Not committed (the caller commits, a refusal's audit event too).

    :raises IdentifierError: an invalid credit code (GB 32100).
    :raises accounts.AccountError: no entity name given.
    :raises VerificationFailedError: the account is below level 3
        (``prerequisite``), or the registry does not confirm (the reason is
        in ``code``).
    :raises VerificationLimitError, VerificationUnavailableError: as in
        idp.accounts.verification.
    """
    code = parse_uscc(uscc)
    name = normalize_name(name)
    if not name or len(name) > 200:
        raise accounts.AccountError("entity_name", _l("Give the entity's registered name."))
    if assurance_level(account) < REPRESENTATIVE_LEVEL or not account.verified_name:
        raise VerificationFailedError("prerequisite", _l(
            "Only a strongly verified identity (level 3) can act for an entity: first "
            "verify your identity strongly."))
    count_check(rt, account, ip)
    number = accounts.resident_id(rt, account)
    answer = ask_registry("legal_entity_registry", rt.registries.legal_entity,
                          lambda registry: registry.verify_entity(
                              code, name, account.verified_name, number))
    matched = answer.result is LegalEntityResult.MATCH
    record("entity.verified", "success" if matched else "failure", account_id=account.id,
           ip=ip, uscc=code, result=answer.result.value, reference=answer.reference[:64])
    if not matched:
        raise VerificationFailedError(answer.result.value, _FAILURES[answer.result])
    now = utcnow()
    expires = now + timedelta(days=rt.settings["assurance"]["validity_days"][
        "legal_entity_registry"])
    entity = db.session.scalar(select(LegalEntity).where(LegalEntity.uscc == code))
    if entity is None:
        entity = LegalEntity(uscc=code, name=name, reference=answer.reference[:64],
                             verified_at=now, expires_at=expires)
        db.session.add(entity)
        db.session.flush()
    else:
        entity.name, entity.reference = name, answer.reference[:64]
        entity.verified_at, entity.expires_at = now, expires
    agent = db.session.scalar(select(Agent).where(Agent.entity_id == entity.id,
                                                  Agent.account_id == account.id))
    if agent is None:
        agent = Agent(entity_id=entity.id, account_id=account.id,
                      role=ROLE_LEGAL_REPRESENTATIVE, reference=answer.reference[:64])
        db.session.add(agent)
    agent.verified_at, agent.reference = now, answer.reference[:64]
    agent.ended_at = agent.ended_reason = None
    db.session.flush()
    return Representation(entity, agent, entity_level(entity, now), assurance_level(account))
