"""The one assurance answer below HTTP (idp.accounts.verification.assurance):
the level each verification method supports, knowledge against
possession, evidence that stops counting, a released identity, and what
``verified_claims`` makes of it; an in-person verification is one
transaction."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from connectors.identifiers import id_check_character
from connectors.registries import PopulationResult
from idp import unit_of_work
from idp.accounts import service as accounts
from idp.accounts import verification
from idp.accounts.models import VerificationEvidence
from idp.accounts.verification import (
    METHODS,
    VerificationFailedError,
    assurance,
    holds_by_knowledge_only,
    verify_in_person,
)
from idp.admin.service import release_identity
from idp.config import load_settings
from idp.extensions import db
from idp.oidc.identity import verified_claims
from idp.timeutil import utcnow

NAME = "张伟"

#: method -> (level with a live population-registry match, level alone,
#: possession), written out rather than read from the table under test.
EXPECTED = {
    "population_registry": (2, 2, False),
    "social_security_card": (2, 0, False),
    "card_read": (2, 0, True),
    "face_comparison": (3, 0, True),
    "carrier_three_element": (3, 0, True),
    "in_person": (4, 4, True),
}


def new_resident_id() -> str:
    """A valid (GB 11643), most likely unused resident ID number."""
    born = date(1950, 1, 1) + timedelta(days=secrets.randbelow(20000))
    first17 = f"110101{born:%Y%m%d}{secrets.randbelow(1000):03d}"
    return first17 + id_check_character(first17)


def add(account, method: str, *, days: int = 30, revoked: bool = False, failed: bool = False,
        age: timedelta = timedelta(0), result: str = "match") -> VerificationEvidence:
    """Evidence of one check of ``method``, made ``age`` ago (flushed)."""
    made = utcnow() - age
    item = VerificationEvidence(
        account_id=account.id, method=method, source=METHODS[method].source, result=result,
        level=0 if failed else METHODS[method].level, reference=f"ref-{method}",
        verified_at=made, expires_at=made + timedelta(days=days),
        revoked_at=utcnow() if revoked else None, revoked_reason="test" if revoked else None)
    db.session.add(item)
    db.session.flush()
    return item


@pytest.fixture
def verified(rt, account):
    """``account`` with a resident ID number and verified name, no evidence yet."""
    accounts.set_resident_id(rt, account, new_resident_id())
    account.verified_name = NAME
    db.session.flush()
    return account


def test_the_table_names_every_method_once_with_a_validity(tmp_path):
    days = load_settings({"instance_path": str(tmp_path)})["assurance"]["validity_days"]
    assert set(METHODS) == set(EXPECTED) <= set(days)
    assert all(name == method.name for name, method in METHODS.items())
    assert all(method.builds_on is None or method.builds_on in METHODS
               for method in METHODS.values())


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_each_method_supports_its_level(rt, verified, method):
    with_match, alone, _possession = EXPECTED[method]
    add(verified, method)
    assert assurance(verified).level == alone
    if method != "population_registry":
        add(verified, "population_registry")
    state = assurance(verified)
    assert state.level == with_match
    assert {item.method.name for item in state.evidence} == {method, "population_registry"}
    assert state.verified_name == NAME


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_knowledge_only_or_possession(rt, verified, method):
    add(verified, "population_registry")
    add(verified, method)
    possession = EXPECTED[method][2]
    assert assurance(verified).possession is possession
    assert holds_by_knowledge_only(verified) is not possession


def test_without_a_number_nothing_is_held_by_knowledge(rt, account):
    add(account, "population_registry")
    assert not assurance(account).possession
    assert not holds_by_knowledge_only(account)


def test_below_level_2_a_phone_or_nothing(rt, account):
    state = assurance(account)
    assert (state.level, state.evidence, state.verified_name) == (0, (), None)
    account.phone_number_verified = True
    assert assurance(account).level == 1


@pytest.mark.parametrize("stopped", [{"days": -1}, {"revoked": True}, {"failed": True}])
def test_expired_revoked_and_failed_evidence_do_not_count(rt, verified, stopped):
    add(verified, "population_registry", **stopped)
    add(verified, "in_person", **stopped)
    state = assurance(verified)
    assert (state.level, state.evidence, state.verified_name) == (0, (), None)
    assert state.verified_at is None and holds_by_knowledge_only(verified)


def test_an_expired_possession_leaves_knowledge_only(rt, verified):
    add(verified, "population_registry")
    add(verified, "face_comparison", days=-1)
    state = assurance(verified)
    assert state.level == 2 and not state.possession
    assert holds_by_knowledge_only(verified)


def test_a_strong_proof_counts_only_on_a_live_registry_match(rt, verified):
    add(verified, "population_registry", days=-1)
    add(verified, "carrier_three_element")
    state = assurance(verified)
    # The proof is still live evidence, but about nobody the registry matched now.
    assert state.level == 0 and state.verified_name is None
    assert [item.method.name for item in state.evidence] == ["carrier_three_element"]


def test_live_evidence_newest_first(rt, verified):
    add(verified, "population_registry", age=timedelta(days=3))
    add(verified, "face_comparison", age=timedelta(days=1))
    add(verified, "carrier_three_element", age=timedelta(days=2), failed=True)
    state = assurance(verified)
    assert [item.method.name for item in state.evidence] == [
        "face_comparison", "population_registry"]
    assert state.verified_at == state.evidence[0].verified_at
    with pytest.raises(AttributeError):
        state.level = 4


def test_a_released_identity_supports_nothing(rt, verified):
    verified.phone_number_verified = True
    add(verified, "population_registry")
    add(verified, "face_comparison")
    assert assurance(verified).level == 3
    release_identity(rt, verified, "operator", "possession proven elsewhere")
    state = assurance(verified)
    assert (state.level, state.evidence, state.verified_name) == (1, (), None)
    assert not holds_by_knowledge_only(verified)


def test_verified_claims_name_each_method_as_evidence(rt, verified):
    add(verified, "population_registry", age=timedelta(days=2))
    add(verified, "card_read", result="social_security", age=timedelta(days=1))
    add(verified, "in_person")
    claims = verified_claims(rt, verified, assurance(verified), {"realname"},
                             {"verification": {"evidence": None}})
    assert claims["claims"] == {"name": NAME}
    assert claims["verification"]["assurance_level"] == rt.acr.acr_of(4)
    in_person, card, population = claims["verification"]["evidence"]
    assert in_person["document_details"] == {"type": "idcard"}
    assert in_person["check_details"][0]["check_method"] == "vpip"
    assert card["document_details"] == {"type": "social_security_card"}
    assert card["check_details"][0]["organization"] == "government service kiosk"
    assert population["record"] == {"type": "population_register",
                                    "source": {"name": "population registry"}}
    assert verified_claims(rt, verified, assurance(verified), {"openid"}, None) is None


@pytest.fixture
def population(monkeypatch):
    """The population registry answers with ``population.result`` (a match
    by default), without a gateway."""
    answer = SimpleNamespace(result=PopulationResult.MATCH, reference="POP-1")
    registry = SimpleNamespace(verify_person=lambda name, number: answer)
    monkeypatch.setattr(verification, "ask_registry", lambda *args: args[-1](registry))
    return answer


def evidence_methods(account) -> list[tuple[str, int]]:
    return [(item.method, item.level) for item in verification.evidence_of(account)]


def test_in_person_is_one_transaction(rt, account, population, commits):
    """The service commits nothing; the caller's one commit keeps both checks."""
    item = verify_in_person(rt, account, NAME, new_resident_id(), "CTR-1", "clerk")
    assert item.method == "in_person" and commits == []
    unit_of_work.commit()
    assert len(commits) == 1
    db.session.rollback()
    assert sorted(evidence_methods(account)) == [("in_person", 4), ("population_registry", 2)]
    assert assurance(account).level == 4 and assurance(account).verified_name == NAME


def test_in_person_without_a_registry_match_keeps_the_failure_only(rt, account, population,
                                                                  commits):
    population.result = PopulationResult.MISMATCH
    with pytest.raises(VerificationFailedError):
        verify_in_person(rt, account, NAME, new_resident_id(), "CTR-2", "clerk")
    assert commits == []
    unit_of_work.commit()  # as the CLI does: the failed match is evidence
    db.session.rollback()
    assert evidence_methods(account) == [("population_registry", 0)]
    assert assurance(account).level == 0
