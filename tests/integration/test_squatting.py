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

import json
import re

import jwt as pyjwt
import pytest
import requests

from connectors.sandbox import read_outbox
from tests.helpers import Browser, callback_params, hidden_inputs, redeem
from tests.integration.test_account_admin import cli, refresh, tokens_of, userinfo_status
from tests.integration.test_kiosk import card_read, post
from tests.sandbox_support import fresh_entity, fresh_person

HELD = "verified for another account with a proof of possession"


@pytest.fixture(scope="module")
def kiosk(gw):
    """A registered kiosk: ``(client, private key)``."""
    from joserfc.jwk import ECKey

    provider, _ = gw
    key = ECKey.generate_key("P-256", parameters={"kid": "kiosk-sq"}, private=True)
    client = provider.create_client(grant_types=["client_credentials"],
                                    auth_method="private_key_jwt",
                                    jwks={"keys": [key.as_dict(private=False)]}, kiosk=True)
    return client, key


def masked(number: str) -> str:
    return number[:4] + "*" * 10 + number[-4:]


def squat(provider, gateway, person, *, card: bool = False) -> tuple[str, str, str]:
    """An account that verified ``person``'s name and ID number online by
    knowing them (with ``card``, also the number printed on their social
    security card, typed in the console: more knowledge, still level 2),
    with a confirmed phone of its own: ``(username, password, phone)``."""
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
                      card_number=person.card_number).status_code == 303
    return username, password, phone


def earlier_representative(account, entity) -> None:
    """Make ``account`` the legal representative of ``entity`` as the
    level-2 rule before issue 7 did (a registry match, no possession)."""
    from datetime import timedelta

    from idp.accounts.models import Agent, LegalEntity
    from idp.extensions import db
    from idp.timeutil import utcnow

    row = LegalEntity(uscc=entity.uscc, name=entity.name, reference="before-issue-7",
                      verified_at=utcnow(), expires_at=utcnow() + timedelta(days=365))
    db.session.add(row)
    db.session.flush()
    db.session.add(Agent(entity_id=row.id, account_id=account.id,
                         role="legal_representative", reference="before-issue-7"))
    db.session.commit()


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


def read_unlinked(provider, kiosk, person, **changes) -> Browser:
    """The card of ``person`` read at the kiosk, which logs into nobody:
    the kiosk's browser opened its link page. Returns that browser."""
    client, key = kiosk
    answer = post(provider, client, key, card_read(provider, client, key, person, **changes))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # Not a login (the old answer logged into whoever held the number).
    assert body.get("linked") is False and "acr" not in body and "amr" not in body, body
    assert body["login_url"].startswith(f"{provider.url}/kiosk/link?ticket=")
    browser = Browser(provider.url)
    entered = browser.session.get(body["login_url"], allow_redirects=False)
    assert entered.status_code == 303 and entered.headers["Location"] == "/kiosk/link"
    return browser


def sign_in_to_link(browser: Browser, username: str, password: str) -> requests.Response:
    """Sign in from the kiosk's link page; returns the confirmation page."""
    page = browser.session.get(f"{browser.base}/kiosk/link")
    assert page.status_code == 200 and "This card is not linked to an account" in page.text
    url = browser.base + re.search(r'id="sign-in" href="([^"]+)"', page.text)[1].replace(
        "&amp;", "&")
    confirm = browser.go(url, username=username, password=password)
    assert confirm.status_code == 200 and "Link your card to this account" in confirm.text
    return confirm


def read_again(provider, kiosk, browser: Browser, person, **changes) -> requests.Response:
    """The card put on the reader again after the sign-in: the kiosk's
    browser opens the new URL and lands on the confirmation, which it
    returns."""
    client, key = kiosk
    body = post(provider, client, key, card_read(provider, client, key, person,
                                                 **changes)).json()
    assert body["linked"] is False, body
    again = browser.session.get(body["login_url"], allow_redirects=False)
    assert again.status_code == 303 and again.headers["Location"] == "/account/link-card"
    page = browser.session.get(f"{browser.base}/account/link-card")
    assert page.status_code == 200 and 'id="card-again"' not in page.text
    return page


def link_at_kiosk(provider, kiosk, person, username, password,
                  **changes) -> tuple[Browser, requests.Response]:
    """Read ``person``'s card, sign in as ``username``, read it again:
    ``(kiosk browser, confirmation page)``."""
    browser = read_unlinked(provider, kiosk, person, **changes)
    sign_in_to_link(browser, username, password)
    return browser, read_again(provider, kiosk, browser, person, **changes)


def answer_link(browser: Browser, confirm: requests.Response,
                action: str = "link") -> requests.Response:
    data = hidden_inputs(confirm.text)
    data["action"] = action
    return browser.session.post(f"{browser.base}/account/link-card", data=data,
                                allow_redirects=False)


def logs_in_at_kiosk(provider, kiosk, person, **changes) -> Browser:
    """The card of ``person`` read at the kiosk logs into its account."""
    client, key = kiosk
    answer = post(provider, client, key, card_read(provider, client, key, person, **changes))
    assert answer.status_code == 200 and answer.json().get("linked") is True, answer.text
    browser = Browser(provider.url)
    entered = browser.session.get(answer.json()["login_url"], allow_redirects=False)
    assert entered.status_code == 302
    return browser


def test_the_card_at_a_kiosk_takes_a_squatted_number_from_its_squatter(gw, kiosk):
    """Regression: the person's own card at a kiosk logged them into the
    account of whoever had verified their name and number first, which
    also acted as their enterprise's representative."""
    from idp.accounts.entities import verify_representative
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import VerificationFailedError
    from idp.audit.models import AuditEvent
    from idp.extensions import db

    provider, gateway = gw
    client, _key = kiosk
    entity, person = fresh_entity(gateway)
    squatter, squatter_password, squatter_phone = squat(provider, gateway, person, card=True)
    with provider.app.app_context():
        # Knowledge (name, number, the card's printed number) no longer makes a
        # representative (level 3 needs possession); one made before issue 7
        # under the level-2 rule still acts until its evidence goes.
        with pytest.raises(VerificationFailedError):
            verify_representative(provider.runtime, find_by_username(squatter), entity.uscc,
                                  entity.name, None)
        earlier_representative(find_by_username(squatter), entity)
    rp, squatter_browser, tokens = tokens_of(provider, squatter, squatter_password)
    owner, owner_password, _ = provider.create_account()

    browser = read_unlinked(provider, kiosk, person)
    page = browser.session.get(f"{provider.url}/kiosk/link")
    assert "by name and number only" in page.text
    assert masked(person.id_number) in page.text and person.id_number not in page.text
    # Nothing changes until the card's holder signs in and links it.
    assert state(provider, squatter)["level"] == 2
    signed = sign_in_to_link(browser, owner, owner_password)
    assert 'data-outcome="take"' in signed.text
    # The card must be on the reader again after the sign-in.
    assert 'id="card-again"' in signed.text and 'value="link"' not in signed.text
    early = answer_link(browser, signed)
    assert early.status_code == 409 and "Put your card on the reader again" in early.text
    assert state(provider, squatter)["level"] == 2
    confirm = read_again(provider, kiosk, browser, person)
    assert 'data-outcome="take"' in confirm.text and 'value="link"' in confirm.text
    assert f"Signed in as {owner}" in confirm.text  # whose account gets the card
    linked = answer_link(browser, confirm)
    assert linked.status_code == 303 and linked.headers["Location"] == "/account"
    # A kiosk session from now on: a public computer's, as the sign-in with a
    # card waiting was (its cookie ends with the browser), and it ends within
    # kiosk.session_ttl.
    [sso_cookie] = [h for h in linked.raw.headers.getlist("Set-Cookie")
                    if h.startswith("idp_sso=")]
    assert "max-age" not in sso_cookie.lower() and "expires" not in sso_cookie.lower()
    with provider.app.app_context():
        from idp.sessions import load_session
        from idp.timeutil import epoch

        session = load_session(provider.runtime.store, browser.session.cookies["idp_sso"])
        assert session.public and 0 < session.expires_at - epoch() <= 300

    got = state(provider, owner)
    assert got["resident_id"] == person.id_number and got["verified_name"] == person.name
    assert got["level"] == 2 and got["live"] == ["card_read", "population_registry"]
    assert ("card_read", "kiosk", "resident_id", client.client_id, True) in got["evidence"]
    assert got["review"] is None
    lost = state(provider, squatter)
    assert lost["resident_id"] is None and lost["card_number"] is None
    assert lost["verified_name"] is None and lost["level"] == 1 and lost["live"] == []
    assert lost["revoked"] == ["identity_released"]
    assert lost["review"] == "identity_released" and lost["flagged"] and not lost["reverify"]
    assert lost["entities"] == [(entity.uscc, False, "identity_released")]
    assert templates(gateway, squatter_phone)[-1] == "identity_released"
    # The squatter's session, refresh and access tokens are dead; its
    # account (password, phone) stays, at level 1.
    assert "/login" in squatter_browser.go(squatter_browser.authorize_url(rp)).url
    assert refresh(provider, rp, tokens).json()["error"] == "invalid_grant"
    assert userinfo_status(provider, tokens) == 401
    again = signed_in(provider, squatter, squatter_password)
    page = again.session.get(f"{provider.url}/account")
    assert 'id="released"' in page.text
    retry = submit(again, "/account/verify", name=person.name, id_number=person.id_number)
    assert retry.status_code == 400 and HELD in retry.text
    # The kiosk session carries the card (hwk) and the password; a department
    # site opened on the kiosk gets them, at the account's level.
    client_rp = provider.create_client()
    response = browser.go(browser.authorize_url(client_rp))
    claims = pyjwt.decode(redeem(provider.url, client_rp, callback_params(response)["code"])
                          .json()["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "hwk", "mfa"] and claims["acr"] == "L2"
    # The next read of the card logs into its holder's account.
    logs_in_at_kiosk(provider, kiosk, person)
    with provider.app.app_context():
        events = {e.event: e for e in db.session.query(AuditEvent).filter(
            AuditEvent.event.in_(("account.identity_released", "kiosk.card_linked")))
            .order_by(AuditEvent.created_at, AuditEvent.id)}
        assert events["account.identity_released"].detail["actor"] == \
            f"kiosk:{client.client_id}"
        assert events["kiosk.card_linked"].account_id == find_by_username(owner).id


def test_a_holder_by_name_and_number_links_its_own_card(gw, kiosk):
    """The person who verified their own name and number online reads their
    card at a kiosk: signed in to their own account, the card strengthens
    it; nothing is released or flagged."""
    provider, gateway = gw
    person = fresh_person(gateway)
    holder, password, phone = squat(provider, gateway, person)
    browser, confirm = link_at_kiosk(provider, kiosk, person, holder, password,
                                     card_type="social_security")
    assert 'data-outcome="strengthen"' in confirm.text
    assert answer_link(browser, confirm).status_code == 303
    got = state(provider, holder)
    assert got["level"] == 2 and got["review"] is None and "identity_released" not in \
        templates(gateway, phone)
    assert got["live"] == ["card_read", "population_registry", "population_registry"]
    assert got["card_number"] == person.card_number  # a login identifier now
    logs_in_at_kiosk(provider, kiosk, person, card_type="social_security")


def test_a_card_is_not_linked_to_an_account_verified_with_another_number(gw, kiosk):
    from idp.accounts.service import find_by_resident_id, find_by_username
    from idp.accounts.verification import verify_population

    provider, gateway = gw
    person, other = fresh_person(gateway), fresh_person(gateway)
    username, password, _ = provider.create_account()
    with provider.app.app_context():
        verify_population(provider.runtime, find_by_username(username), other.name,
                          other.id_number, None)
    browser, confirm = link_at_kiosk(provider, kiosk, person, username, password)
    assert 'data-outcome="refused"' in confirm.text and 'value="link"' not in confirm.text
    refused = answer_link(browser, confirm)
    assert refused.status_code == 409
    assert "already verified with another ID number" in refused.text
    with provider.app.app_context():
        assert find_by_resident_id(provider.runtime, person.id_number) is None
    assert state(provider, username)["resident_id"] == other.id_number
    # The card still waits; cancelled, it is forgotten.
    cancelled = answer_link(browser, confirm, "cancel")
    assert cancelled.status_code == 303
    gone = browser.session.get(f"{provider.url}/account/link-card")
    assert gone.status_code == 400 and "No card is waiting" in gone.text


def test_the_waiting_card_belongs_to_the_kiosk_browser_and_the_next_sign_in(gw, kiosk):
    """The previous visitor's session on the kiosk ends when a card is read
    there; the card waits only in that browser, and only a sign-in made
    after the read links it."""
    from idp.accounts.service import find_by_username
    from idp.authn.kiosk.service import CardLinkError, begin_link, link_card
    from idp.sessions import create_session

    provider, gateway = gw
    client, key = kiosk
    person = fresh_person(gateway)
    visitor, visitor_password, _ = provider.create_account()
    browser = signed_in(provider, visitor, visitor_password)
    old_cookie = browser.session.cookies.get("idp_sso")
    answer = post(provider, client, key, card_read(provider, client, key, person)).json()
    entered = browser.session.get(answer["login_url"], allow_redirects=False)
    assert entered.status_code == 303 and "idp_sso=;" in entered.headers["Set-Cookie"]
    stale = requests.Session()
    stale.cookies.set("idp_sso", old_cookie)
    assert stale.get(f"{provider.url}/account", allow_redirects=False).status_code == 302
    assert browser.session.get(f"{provider.url}/account/link-card",
                               allow_redirects=False).status_code == 302  # sign in first
    replay = requests.get(answer["login_url"], allow_redirects=False)
    assert replay.status_code == 400 and "used or has expired" in replay.text
    # Whoever signs in next on the kiosk, after its reader walked away,
    # sees the card waiting but cannot link it without the card.
    walker_by, walker_password, _ = provider.create_account()
    page = browser.go(f"{provider.url}/account", username=walker_by,
                      password=walker_password)
    assert 'id="card-waiting"' in page.text
    page = browser.session.get(f"{provider.url}/account/link-card")
    assert 'id="card-again"' in page.text and 'value="link"' not in page.text
    refused = answer_link(browser, page)
    assert refused.status_code == 409 and "Put your card on the reader again" in refused.text
    assert state(provider, walker_by)["resident_id"] is None
    # Another browser has no card waiting.
    other, other_password, _ = provider.create_account()
    elsewhere = signed_in(provider, other, other_password)
    nothing = elsewhere.session.get(f"{provider.url}/account/link-card")
    assert nothing.status_code == 400 and "No card is waiting" in nothing.text
    # A session older than the read does not link it.
    rt = provider.runtime
    ticket = post(provider, client, key, card_read(provider, client, key, person)).json()[
        "login_url"].split("ticket=")[1]
    with provider.app.app_context():
        account = find_by_username(other)
        older = create_session(rt.store, account.id, ["pwd"], 600,
                               account.session_generation)
        older.auth_time -= 5
        secret, presented = begin_link(rt, ticket, None, None, None)
        assert not presented
        with pytest.raises(CardLinkError) as refused:
            link_card(rt, account, older, secret, None)
        assert refused.value.code == "login_required"
    # Cancelled at the kiosk, the card is forgotten.
    page = browser.session.get(f"{provider.url}/kiosk/link")
    cancel = browser.session.post(f"{provider.url}/kiosk/link", data=hidden_inputs(page.text),
                                  allow_redirects=False)
    assert cancel.status_code == 303
    assert browser.session.get(f"{provider.url}/kiosk/link").status_code == 400


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
    assert done.status_code == 303 and done.headers["Location"] == "/account"
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
    assert done.status_code == 303
    got = state(provider, claimant)
    assert got["level"] == 3 and got["live"] == ["carrier_three_element",
                                                 "population_registry"]
    lost = state(provider, squatter)
    assert lost["level"] == 1 and lost["card_number"] is None and lost["flagged"]


def test_a_holder_that_proved_possession_keeps_its_number(gw, kiosk):
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import verify_carrier, verify_face

    provider, gateway = gw
    person = fresh_person(gateway)
    holder, holder_password, _ = provider.create_account(verified_phone=person.phone)
    browser = signed_in(provider, holder, holder_password)
    assert submit(browser, "/account/verify", name=person.name,
                  id_number=person.id_number).status_code == 303
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
    logs_in_at_kiosk(provider, kiosk, person)
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


def test_the_card_number_cannot_lift_a_card_session_to_level_3(gw, kiosk):
    """Regression (issue 7, finding 1): a thief with a stolen card got a
    kiosk session (amr hwk), then "verified" the social security card by
    typing the number printed on it, and reached level 3."""
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import VerificationFailedError, verify_card

    provider, gateway = gw
    person = fresh_person(gateway)
    owner, owner_password, _ = provider.create_account()
    browser, confirm = link_at_kiosk(provider, kiosk, person, owner, owner_password)
    assert answer_link(browser, confirm).status_code == 303
    thief = logs_in_at_kiosk(provider, kiosk, person, card_type="social_security")
    page = thief.session.get(f"{provider.url}/account/verify/strong")
    assert 'id="card-refused"' in page.text and 'name="card_number"' not in page.text
    typed = submit(thief, "/account/verify/strong", method="card",
                   card_number=person.card_number)
    assert typed.status_code == 422 and "opened with a card at a kiosk" in typed.text
    assert state(provider, owner)["level"] == 2
    with provider.app.app_context():
        with pytest.raises(VerificationFailedError) as refused:
            verify_card(provider.runtime, find_by_username(owner), person.card_number, None,
                        amr=["hwk", "pwd", "mfa"])
        assert refused.value.code == "card_knowledge"


def test_a_stolen_card_alone_does_not_reach_level_3(gw, kiosk):
    """A card read proves the card is in the reader, not who holds it: a
    thief who links a stolen card to an account of their own gets level 2,
    and the number printed on the card adds nothing, even from their own
    device."""
    provider, gateway = gw
    person = fresh_person(gateway)
    thief, password, _ = provider.create_account()
    browser, confirm = link_at_kiosk(provider, kiosk, person, thief, password,
                                     card_type="social_security")
    assert answer_link(browser, confirm).status_code == 303
    assert state(provider, thief)["level"] == 2
    at_home = signed_in(provider, thief, password)
    typed = submit(at_home, "/account/verify/strong", method="card",
                   card_number=person.card_number)
    assert typed.status_code == 422 and "card read at a kiosk" in typed.text
    assert state(provider, thief)["level"] == 2


def test_a_linked_card_is_document_evidence(gw, kiosk):
    """verified_claims evidence names the card read: a document whose chip
    a government kiosk read (check_method vcrypt)."""
    from tests.integration.test_identity_claims import tokens_for, userinfo

    provider, gateway = gw
    person = fresh_person(gateway)
    username, password, _ = provider.create_account()
    browser, confirm = link_at_kiosk(provider, kiosk, person, username, password,
                                     card_type="social_security")
    assert answer_link(browser, confirm).status_code == 303
    wanted = {"userinfo": {"verified_claims": {"verification": {"evidence": None},
                                               "claims": {"name": None}}}}
    tokens = tokens_for(provider, provider.create_client(), username, password,
                        scope="openid realname", claims=json.dumps(wanted))
    verified = userinfo(provider, tokens["access_token"])["verified_claims"]
    assert verified["claims"] == {"name": person.name}
    assert verified["verification"]["assurance_level"] == "L2"
    [document] = [e for e in verified["verification"]["evidence"] if e["type"] == "document"]
    assert document["document_details"] == {"type": "social_security_card"}
    [check] = document["check_details"]
    assert check["check_method"] == "vcrypt"
    assert check["organization"] == "government service kiosk"

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
        # From the owner's own device the card registers, but it is knowledge:
        # it never lifts the level (a stolen card must not reach level 3).
        verify_card(provider.runtime, account, person.card_number, None, amr=["pwd"])
        assert assurance_level(account) == 2


def test_operators_review_released_accounts(gw):
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import PossessionProofRequiredError, verify_face
    from idp.accounts.verification import verify_population as population
    from idp.audit.models import AuditEvent
    from idp.extensions import db

    provider, gateway = gw
    person = fresh_person(gateway)
    squatter, _, _ = squat(provider, gateway, person)
    claimant, _, _ = provider.create_account()
    with provider.app.app_context():
        account = find_by_username(claimant)
        with pytest.raises(PossessionProofRequiredError):
            population(provider.runtime, account, person.name, person.id_number, None)
        verify_face(provider.runtime, account, "pass-review", None)
    shown = json.loads(cli(provider, gateway, "users", "show", squatter, "--json").output)
    assert shown["review"] == "identity_released" and shown["review_flagged_at"]
    assert "review: identity_released" in cli(provider, gateway, "users", "show",
                                              squatter).output
    listed = json.loads(cli(provider, gateway, "users", "list", "--review", "--json").output)
    assert squatter in [row["username"] for row in listed]
    assert claimant not in [row["username"] for row in listed]
    cleared = cli(provider, gateway, "users", "clear-review", squatter, "--reason",
                  "spoke to the holder", "--operator", "clerk-7")
    assert cleared.exit_code == 0 and "identity_released" in cleared.output, cleared.output
    again = cli(provider, gateway, "users", "clear-review", squatter, "--reason", "x",
                "--operator", "clerk-7")
    assert again.exit_code == 1 and "is not flagged for review" in again.output
    listed = json.loads(cli(provider, gateway, "users", "list", "--review", "--json").output)
    assert squatter not in [row["username"] for row in listed]
    assert json.loads(cli(provider, gateway, "users", "show", squatter,
                          "--json").output)["review"] is None
    with provider.app.app_context():
        event = db.session.query(AuditEvent).filter_by(
            event="account.review_cleared", account_id=find_by_username(squatter).id).one()
        assert event.detail["actor"] == "clerk-7"
        assert event.detail["flagged"] == "identity_released"


def test_a_counter_take_over_flags_and_tells_the_holder(gw):
    provider, gateway = gw
    person = fresh_person(gateway)
    squatter, _, phone = squat(provider, gateway, person)
    owner, _, _ = provider.create_account()
    taken = cli(provider, gateway, "users", "verify-in-person", owner, "--name", person.name,
                "--id-number", person.id_number, "--reference", "CTR-10", "--take-over",
                "--operator", "clerk-7")
    assert taken.exit_code == 0, taken.output
    lost = state(provider, squatter)
    assert lost["review"] == "identity_released" and lost["reverify"]
    assert templates(gateway, phone)[-1] == "identity_released"
    assert state(provider, owner)["level"] == 4


def test_waiting_claims_and_cards_keep_no_number_in_clear(gw, kiosk):
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import PossessionProofRequiredError, verify_population
    from tests.integration.test_no_plaintext import _raw_files, _redis_text

    provider, gateway = gw
    person = fresh_person(gateway)
    squat(provider, gateway, person)
    claimant, _, _ = provider.create_account()
    with provider.app.app_context(), pytest.raises(PossessionProofRequiredError):
        verify_population(provider.runtime, find_by_username(claimant), person.name,
                          person.id_number, None)
    read_unlinked(provider, kiosk, person, card_type="social_security")
    client, key = kiosk
    post(provider, client, key, card_read(provider, client, key, person))  # a ticket waits
    stored = _raw_files(provider).decode("latin-1") + _redis_text(provider)
    for plain in (person.id_number, person.card_number):
        assert plain not in stored
