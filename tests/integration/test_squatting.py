"""Identity squatting (issue 7, finding 2): possession outranks knowledge.

Whoever knows a person's name and ID number could verify them online first;
then the person's own card at a kiosk logged into that account, and it
passed the legal-entity check as the person's enterprise's representative.
Now a card read at a kiosk, a face comparison, the carrier check of one's
own phone or a counter visit takes such a number over: it never logs into
the knowledge-only holder, which loses the number (and the representations
resting on it), is told by text message and is flagged for review. An
account that proved possession keeps its number. The number printed on a
card is knowledge: it lifts neither a kiosk session nor a card's holder to
level 3.
"""

from __future__ import annotations

import pytest
import requests

from connectors.sandbox import read_outbox
from tests.helpers import Browser, hidden_inputs
from tests.sandbox_support import fresh_person

HELD = "verified for another account with a proof of possession"


def masked(number: str) -> str:
    return number[:4] + "*" * 10 + number[-4:]


def squat(provider, gateway, person, *, card: bool = False) -> tuple[str, str, str]:
    """An account that verified ``person``'s name and ID number online by
    knowing them (with ``card``, also the number printed on their social
    security card, typed in the console: level 3 by knowledge alone), with a
    confirmed phone of its own: ``(username, password, phone)``."""
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import verify_population

    phone = fresh_person(gateway).phone
    username, password, _ = provider.create_account(verified_phone=phone)
    with provider.app.app_context():
        verify_population(provider.runtime, find_by_username(username), person.name,
                          person.id_number, None)
    if card:
        browser = signed_in(provider, username, password)
        assert submit(browser, "/account/verify/strong", method="card",
                      card_number=person.card_number).status_code == 302
    return username, password, phone


def state(provider, username) -> dict:
    """What the tests look at of an account."""
    from idp.accounts import service as accounts
    from idp.accounts.entities import representations
    from idp.accounts.verification import assurance_level, evidence_of, is_live

    rt = provider.runtime
    with provider.app.app_context():
        account = accounts.find_by_username(username)
        return {
            "level": assurance_level(account),
            "resident_id": accounts.resident_id(rt, account),
            "card_number": accounts.card_number(rt, account),
            "verified_name": account.verified_name,
            "review": account.review_reason,
            "flagged": account.review_flagged_at is not None,
            "reverify": account.reverification_required,
            "live": sorted(e.method for e in evidence_of(account) if is_live(e)),
            "revoked": sorted({e.revoked_reason for e in evidence_of(account) if e.level}),
            "evidence": [(e.method, e.source, e.result, e.actor, is_live(e))
                         for e in evidence_of(account)],
            "entities": [(r.entity.uscc, r.level > 0 and r.agent.ended_at is None,
                          r.agent.ended_reason) for r in representations(account)],
        }


def templates(gateway, phone) -> list[str]:
    return [m["template"] for m in read_outbox(gateway.data_path, phone)]


def signed_in(provider, username, password) -> Browser:
    browser = Browser(provider.url)
    page = browser.go(f"{provider.url}/account", username=username, password=password)
    assert page.status_code == 200, page.text[:300]
    return browser


def submit(browser: Browser, path: str, **fields) -> requests.Response:
    page = browser.session.get(browser.base + path)
    data = hidden_inputs(page.text)
    data.update(fields)
    return browser.session.post(browser.base + path, data=data, allow_redirects=False)


def test_an_online_claim_proven_by_face_takes_the_number(gw):
    """Regression: an account whose population check matched a name and
    number someone else had verified first was refused for good. It can now
    prove possession (face, or its own phone at the carrier), which takes
    the number over; a typed card number cannot."""
    provider, gateway = gw
    person = fresh_person(gateway)
    squatter, _, squatter_phone = squat(provider, gateway, person)
    claimant, password, _ = provider.create_account()
    browser = signed_in(provider, claimant, password)
    claimed = submit(browser, "/account/verify", name=person.name, id_number=person.id_number)
    assert claimed.status_code == 303
    assert claimed.headers["Location"] == "/account/verify/strong"
    page = browser.session.get(f"{provider.url}/account/verify/strong")
    assert 'id="claim"' in page.text and masked(person.id_number) in page.text
    assert 'name="card_number"' not in page.text and 'value="face"' in page.text
    typed = submit(browser, "/account/verify/strong", method="card",
                   card_number=person.card_number)
    assert typed.status_code == 422 and "proves nothing about who holds it" in typed.text
    failed = submit(browser, "/account/verify/strong", method="face", liveness_token="fail-1")
    assert failed.status_code == 422 and "did not match" in failed.text
    assert state(provider, squatter)["level"] == 2  # nothing released
    done = submit(browser, "/account/verify/strong", method="face", liveness_token="pass-1")
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    got = state(provider, claimant)
    assert got["resident_id"] == person.id_number and got["level"] == 3
    assert got["live"] == ["face_comparison", "population_registry"]
    lost = state(provider, squatter)
    assert lost["resident_id"] is None and lost["level"] == 1
    assert lost["review"] == "identity_released"
    assert templates(gateway, squatter_phone)[-1] == "identity_released"
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import pending_claim

    with provider.app.app_context():
        assert pending_claim(provider.runtime, find_by_username(claimant)) is None


def test_an_online_claim_proven_by_the_claimants_own_phone_takes_the_number(gw):
    provider, gateway = gw
    person = fresh_person(gateway)
    squatter, _, _ = squat(provider, gateway, person, card=True)
    claimant, password, _ = provider.create_account(verified_phone=person.phone)
    browser = signed_in(provider, claimant, password)
    assert submit(browser, "/account/verify", name=person.name,
                  id_number=person.id_number).status_code == 303
    done = submit(browser, "/account/verify/strong", method="carrier")
    assert done.status_code == 302
    got = state(provider, claimant)
    assert got["level"] == 3 and got["live"] == ["carrier_three_element",
                                                 "population_registry"]
    lost = state(provider, squatter)
    assert lost["level"] == 1 and lost["card_number"] is None and lost["flagged"]


def test_a_holder_that_proved_possession_keeps_its_number(gw):
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import verify_carrier, verify_face

    provider, gateway = gw
    person = fresh_person(gateway)
    holder, holder_password, _ = provider.create_account(verified_phone=person.phone)
    browser = signed_in(provider, holder, holder_password)
    assert submit(browser, "/account/verify", name=person.name,
                  id_number=person.id_number).status_code == 302
    with provider.app.app_context():
        verify_carrier(provider.runtime, find_by_username(holder), None)
    claimant, password, _ = provider.create_account()
    other = signed_in(provider, claimant, password)
    refused = submit(other, "/account/verify", name=person.name, id_number=person.id_number)
    assert refused.status_code == 400 and HELD in refused.text
    assert person.name in refused.text  # what was typed is kept
    from idp.accounts.verification import pending_claim

    with provider.app.app_context():
        assert pending_claim(provider.runtime, find_by_username(claimant)) is None
    assert state(provider, holder)["level"] == 3
    # A holder that proves possession while a claim waits keeps the number.
    second = fresh_person(gateway)
    squatter, _, _ = squat(provider, gateway, second)
    assert submit(other, "/account/verify", name=second.name,
                  id_number=second.id_number).status_code == 303
    with provider.app.app_context():
        verify_face(provider.runtime, find_by_username(squatter), "pass-first", None)
    late = submit(other, "/account/verify/strong", method="face", liveness_token="pass-2")
    assert late.status_code == 422 and HELD in late.text
    assert state(provider, squatter)["resident_id"] == second.id_number
    assert state(provider, claimant)["resident_id"] is None


def test_the_card_check_is_refused_in_a_kiosk_session(gw):
    """Regression (issue 7, finding 1): the number printed on a card is
    knowledge; a session opened with a card at a kiosk (amr hwk) could
    "verify" that card by typing it. It is refused there, and stays strong
    evidence from a session of the account's own password."""
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import (
        VerificationFailedError,
        assurance_level,
        verify_card,
        verify_population,
    )

    provider, gateway = gw
    person = fresh_person(gateway)
    username, _, _ = provider.create_account()
    with provider.app.app_context():
        account = find_by_username(username)
        verify_population(provider.runtime, account, person.name, person.id_number, None)
        for amr in (["hwk"], ["hwk", "pwd", "mfa"]):
            with pytest.raises(VerificationFailedError) as refused:
                verify_card(provider.runtime, account, person.card_number, None, amr=amr)
            assert refused.value.code == "card_knowledge"
            assert "opened with a card at a kiosk" in str(refused.value.message)
        assert assurance_level(account) == 2
        verify_card(provider.runtime, account, person.card_number, None, amr=["pwd"])
        assert assurance_level(account) == 3
