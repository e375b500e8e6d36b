"""Legal entities and their agents: an account verified at level 2 proves
that it is the legal representative of an enterprise or institution, by
the legal-entity registry matching the credit code, the entity's name and
the account's verified name and ID number (a four-element check). The
entity is then at level 2 (USCC matched in the legal-entity registry) until
the match expires, and the account is its agent.

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
    :ivar agent: the account's role for it.
    :ivar level: the entity's level now: 2 while its registry match is live, else 0.
    """

    entity: LegalEntity
    agent: Agent
    level: int


def entity_level(entity: LegalEntity, now: datetime | None = None) -> int:
    """2 while the entity's registry match has not expired, else 0."""
    return 2 if entity.expires_at > (now or utcnow()) else 0


def representations(account: Account) -> list[Representation]:
    """The entities ``account`` acts for, by name."""
    now = utcnow()
    rows = db.session.execute(
        select(LegalEntity, Agent).join(Agent, Agent.entity_id == LegalEntity.id)
        .where(Agent.account_id == account.id).order_by(LegalEntity.name)).all()
    return [Representation(entity, agent, entity_level(entity, now)) for entity, agent in rows]


def verify_representative(rt: Runtime, account: Account, uscc: str, name: str,
                          ip: str | None) -> Representation:
    """Level 2 for an entity, with ``account`` as its legal representative:
    the legal-entity registry must match the credit code, the entity's name
    and the account's verified name and ID number. Counted like every other
    registry check; commits.

    :raises IdentifierError: an invalid credit code (GB 32100).
    :raises accounts.AccountError: no entity name given.
    :raises VerificationFailedError: the account is below level 2, or the
        registry does not confirm (the reason is in ``code``).
    :raises VerificationLimitError, VerificationUnavailableError: as in
        idp.accounts.verification.
    """
    code = parse_uscc(uscc)
    name = normalize_name(name)
    if not name or len(name) > 200:
        raise accounts.AccountError("entity_name", _l("Give the entity's registered name."))
    if assurance_level(account) < 2 or not account.verified_name:
        raise VerificationFailedError("prerequisite", _l(
            "First verify your name and ID number with the population registry."))
    count_check(rt, account, ip)
    number = accounts.resident_id(rt, account)
    answer = ask_registry(rt, "legal_entity_registry", lambda gw: gw.verify_entity(
        code, name, account.verified_name, number))
    matched = answer.result is LegalEntityResult.MATCH
    record("entity.verified", "success" if matched else "failure", account_id=account.id,
           ip=ip, uscc=code, result=answer.result.value, reference=answer.reference[:64])
    if not matched:
        db.session.commit()
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
    db.session.commit()
    return Representation(entity, agent, entity_level(entity, now))
