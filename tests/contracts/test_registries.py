"""Contract suite of the registry and SMS connectors, run against every
implementation (today: the HTTP GatewayClient against the sandbox gateway
served as a real HTTP server on 127.0.0.1), plus the protocol's security
checks (signature, clock skew, nonce replay) and the client's resilience
(retries, circuit breaker, positive-only cache)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from connectors import signing
from connectors.http import GatewayClient, SmsRejectedError
from connectors.identifiers import id_check_character, uscc_check_character
from connectors.registries import (
    CardStatus,
    CarrierResult,
    FaceDecision,
    GatewayRequestError,
    LegalEntityResult,
    PopulationResult,
    RegistryUnavailableError,
)
from connectors.sandbox import DEMO_ENTITIES, DEMO_PEOPLE, demo_people, seed
from connectors.sms import SmsGatewayError, SmsReceipt
from tests.sandbox_support import KEY, SECRET, Gateway, start_sandbox

ALIVE, LOST, SUSPENDED, DECEASED, CANCELLED = (DEMO_PEOPLE[0], DEMO_PEOPLE[5], DEMO_PEOPLE[6],
                                               DEMO_PEOPLE[7], DEMO_PEOPLE[8])
ACTIVE_ENTITY, REVOKED_ENTITY = DEMO_ENTITIES[0], DEMO_ENTITIES[1]
UNKNOWN_ID = "11010119990101999" + id_check_character("11010119990101999")
UNKNOWN_USCC = "91440101MA9999999" + uscc_check_character("91440101MA9999999")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[Gateway]:
    """The sandbox gateway, seeded and live on 127.0.0.1 for this module."""
    live = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield live
    live.stop()


def http_client(gateway: Gateway, **kwargs) -> GatewayClient:
    options = {"retries": 2, "backoff": 0.0, "cache_ttl": 0}
    options.update(kwargs)
    return GatewayClient(gateway.url, KEY, SECRET, **options)


# Every implementation of the Protocols; an in-process fake for unit tests
# would be added here (it must live under tests/, not in the product).
IMPLEMENTATIONS = {"http": http_client}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def registry(request, gateway) -> Iterator[GatewayClient]:
    client = IMPLEMENTATIONS[request.param](gateway)
    yield client
    client.close()


# -- contract: every endpoint, every kind of answer --------------------------

@pytest.mark.parametrize(("name", "id_number", "expected"), [
    (ALIVE.name, ALIVE.id_number, PopulationResult.MATCH),
    ("王五", ALIVE.id_number, PopulationResult.MISMATCH),
    (ALIVE.name, UNKNOWN_ID, PopulationResult.NOT_FOUND),
    (DECEASED.name, DECEASED.id_number, PopulationResult.DECEASED),
    (CANCELLED.name, CANCELLED.id_number, PopulationResult.CANCELLED),
])
def test_population(registry, name, id_number, expected):
    check = registry.verify_person(name, id_number)
    assert check.result is expected
    assert check.reference


@pytest.mark.parametrize(("uscc", "name", "expected"), [
    (ACTIVE_ENTITY.uscc, ACTIVE_ENTITY.name, LegalEntityResult.MATCH),
    (ACTIVE_ENTITY.uscc, "别的公司", LegalEntityResult.MISMATCH),
    (UNKNOWN_USCC, "无此公司", LegalEntityResult.NOT_FOUND),
    (REVOKED_ENTITY.uscc, REVOKED_ENTITY.name, LegalEntityResult.REVOKED),
])
def test_legal_entity(registry, uscc, name, expected):
    check = registry.verify_entity(uscc, name)
    assert check.result is expected
    assert check.reference


@pytest.mark.parametrize(("representative", "expected"), [
    ((ALIVE.name, ALIVE.id_number), LegalEntityResult.MATCH),
    ((DEMO_PEOPLE[1].name, DEMO_PEOPLE[1].id_number),
     LegalEntityResult.REPRESENTATIVE_MISMATCH),
    (("王五", ALIVE.id_number), LegalEntityResult.REPRESENTATIVE_MISMATCH),
])
def test_legal_representative(registry, representative, expected):
    assert ACTIVE_ENTITY.representative_id == ALIVE.id_number
    check = registry.verify_entity(ACTIVE_ENTITY.uscc, ACTIVE_ENTITY.name, *representative)
    assert check.result is expected and check.reference


def test_legal_representative_of_a_revoked_entity_is_revoked(registry):
    check = registry.verify_entity(REVOKED_ENTITY.uscc, REVOKED_ENTITY.name,
                                   REVOKED_ENTITY.representative_name,
                                   REVOKED_ENTITY.representative_id)
    assert check.result is LegalEntityResult.REVOKED


def test_legal_representative_id_number_is_checked(registry):
    with pytest.raises(GatewayRequestError) as info:
        registry.verify_entity(ACTIVE_ENTITY.uscc, ACTIVE_ENTITY.name, ALIVE.name, "12345")
    assert info.value.field == "id_number" or info.value.code == "invalid_request"


def test_dataset_of_an_older_layout_is_refused(tmp_path):
    import sqlite3

    from connectors.sandbox import create_sandbox

    path = tmp_path / "old.sqlite3"
    seed(path, people=20, entities=5)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(FileNotFoundError, match="older layout"):
        create_sandbox(str(path), {KEY: SECRET})


@pytest.mark.parametrize(("person", "card", "expected"), [
    (ALIVE, ALIVE.card_number, CardStatus.ACTIVE),
    (LOST, LOST.card_number, CardStatus.LOST),
    (SUSPENDED, SUSPENDED.card_number, CardStatus.SUSPENDED),
    (DECEASED, DECEASED.card_number, CardStatus.CANCELLED),
    (ALIVE, LOST.card_number, CardStatus.NOT_FOUND),
])
def test_social_security_card(registry, person, card, expected):
    check = registry.check_card(person.id_number, card)
    assert check.status is expected
    assert check.reference


@pytest.mark.parametrize(("name", "id_number", "phone", "expected"), [
    (ALIVE.name, ALIVE.id_number, ALIVE.phone, CarrierResult.MATCH),
    (ALIVE.name, ALIVE.id_number, DEMO_PEOPLE[1].phone, CarrierResult.MISMATCH),
    (ALIVE.name, ALIVE.id_number, "+8613999999999", CarrierResult.NOT_FOUND),
])
def test_carrier(registry, name, id_number, phone, expected):
    check = registry.verify_phone(name, id_number, phone)
    assert check.result is expected
    assert check.reference


@pytest.mark.parametrize(("token", "decision", "score"), [
    ("pass-abc", FaceDecision.PASS, 0.97),
    ("fail-abc", FaceDecision.FAIL, 0.12),
    ("blurry", FaceDecision.RETRY, 0.0),
])
def test_face(registry, token, decision, score):
    result = registry.compare_face(ALIVE.id_number, ALIVE.name, token)
    assert result.decision is decision
    assert result.score == pytest.approx(score)
    assert result.reference


def test_sms_send_reaches_outbox(registry, gateway):
    receipt = registry.send("otp_login", "+8613900000042", {"code": "123456", "minutes": "5"})
    assert isinstance(receipt, SmsReceipt) and receipt.message_id
    resp = signed(gateway, "GET", "/sms/v1/outbox", query="phone=%2B8613900000042")
    assert resp.status_code == 200
    messages = resp.json()["messages"]
    assert [m["message_id"] for m in messages] == [receipt.message_id]
    assert messages[0]["template"] == "otp_login"
    assert messages[0]["params"] == {"code": "123456", "minutes": "5"}


def test_invalid_input_is_a_value_error(registry):
    with pytest.raises(GatewayRequestError) as info:
        registry.verify_person(ALIVE.name, ALIVE.id_number[:17] + "0"
                               if ALIVE.id_number[17] != "0" else ALIVE.id_number[:17] + "1")
    assert isinstance(info.value, ValueError)
    assert (info.value.code, info.value.field, info.value.status) == (
        "invalid_request", "id_number", 400)


def test_sms_refused_is_an_sms_gateway_error(registry):
    with pytest.raises(SmsRejectedError) as info:
        registry.send("otp_login", "13900000001", {})
    assert isinstance(info.value, SmsGatewayError)
    assert (info.value.code, info.value.field) == ("invalid_request", "phone")


# -- the sandbox dataset -----------------------------------------------------

def test_dataset_is_reproducible(tmp_path):
    seed(tmp_path / "a.sqlite3", people=30, entities=5, seed=3)
    seed(tmp_path / "b.sqlite3", people=30, entities=5, seed=3)
    seed(tmp_path / "c.sqlite3", people=30, entities=5, seed=4)
    a, b, c = (demo_people(tmp_path / f"{n}.sqlite3", limit=30) for n in "abc")
    assert a == b
    assert a != c
    assert a[:len(DEMO_PEOPLE)] == c[:len(DEMO_PEOPLE)] == list(DEMO_PEOPLE)
    for person in a:
        assert id_check_character(person.id_number[:17]) == person.id_number[17]


def test_demo_people_over_http(gateway):
    resp = signed(gateway, "GET", "/sandbox/people", query="limit=5")
    assert resp.status_code == 200
    assert [p["id_number"] for p in resp.json()["people"]] == [
        p.id_number for p in DEMO_PEOPLE[:5]]


# -- the protocol's security checks ------------------------------------------

def signed(gateway: Gateway, method: str, path: str, body: bytes = b"", query: str = "",
           secret: str = SECRET, when: datetime | None = None, nonce: str | None = None,
           key: str = KEY) -> requests.Response:
    headers = signing.sign_request(key, secret, method, path, query, body,
                                   when or datetime.now(UTC), nonce)
    headers["Content-Type"] = "application/json"
    url = gateway.url + path + (f"?{query}" if query else "")
    return requests.request(method, url, data=body or None, headers=headers, timeout=5)


def population_body(person=ALIVE) -> bytes:
    return json.dumps({"name": person.name, "id_number": person.id_number}).encode()


def test_wrong_secret_is_refused(gateway):
    client = GatewayClient(gateway.url, KEY, "not-the-secret", retries=0)
    with pytest.raises(GatewayRequestError) as info:
        client.verify_person(ALIVE.name, ALIVE.id_number)
    assert (info.value.code, info.value.status) == ("bad_signature", 401)


def test_unknown_key_is_refused(gateway):
    resp = signed(gateway, "POST", "/population/v1/verify", population_body(), key="nobody")
    assert resp.status_code == 401
    assert resp.json() == {"error": "unknown_key"}


def test_tampered_body_is_refused(gateway):
    headers = signing.sign_request(KEY, SECRET, "POST", "/population/v1/verify", "",
                                   population_body(), datetime.now(UTC))
    resp = requests.post(gateway.url + "/population/v1/verify", data=population_body(LOST),
                         headers=headers, timeout=5)
    assert resp.status_code == 401
    assert resp.json() == {"error": "bad_signature"}


def test_clock_skew_is_refused(gateway):
    late = GatewayClient(gateway.url, KEY, SECRET, retries=0,
                         clock=lambda: datetime.now(UTC) - timedelta(seconds=120))
    with pytest.raises(GatewayRequestError) as info:
        late.verify_person(ALIVE.name, ALIVE.id_number)
    assert (info.value.code, info.value.status) == ("clock_skew", 401)
    # Within 90 s is accepted.
    near = GatewayClient(gateway.url, KEY, SECRET, retries=0,
                         clock=lambda: datetime.now(UTC) + timedelta(seconds=60))
    assert near.verify_person(ALIVE.name, ALIVE.id_number).result is PopulationResult.MATCH


def test_replayed_nonce_is_refused(gateway):
    headers = signing.sign_request(KEY, SECRET, "POST", "/population/v1/verify", "",
                                   population_body(), datetime.now(UTC))
    headers["Content-Type"] = "application/json"
    first = requests.post(gateway.url + "/population/v1/verify", data=population_body(),
                          headers=headers, timeout=5)
    second = requests.post(gateway.url + "/population/v1/verify", data=population_body(),
                           headers=headers, timeout=5)
    assert first.status_code == 200
    assert second.status_code == 401
    assert second.json() == {"error": "replayed_nonce"}


def test_short_nonce_is_refused(gateway):
    resp = signed(gateway, "POST", "/population/v1/verify", population_body(), nonce="short")
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_request", "field": "X-Gateway-Nonce"}


def test_signed_query_order_does_not_matter(gateway):
    headers = signing.sign_request(KEY, SECRET, "GET", "/sandbox/people", "limit=2&x=1", b"",
                                   datetime.now(UTC))
    resp = requests.get(gateway.url + "/sandbox/people?x=1&limit=2", headers=headers, timeout=5)
    assert resp.status_code == 200
    assert len(resp.json()["people"]) == 2


# -- resilience of the HTTP client -------------------------------------------

def test_verification_is_retried_after_503(gateway):
    path = "/population/v1/verify"
    client = http_client(gateway, retries=2)
    before = gateway.state.requests[path]
    gateway.state.inject_failures(path, 2, 503)
    assert client.verify_person(ALIVE.name, ALIVE.id_number).result is PopulationResult.MATCH
    assert gateway.state.requests[path] == before + 1  # the third attempt got through


def test_verification_gives_up_after_bounded_retries(gateway):
    path = "/legal-entity/v1/verify"
    sleeps: list[float] = []
    client = http_client(gateway, retries=2, backoff=0.1, sleep=sleeps.append)
    gateway.state.inject_failures(path, 3, 503)
    with pytest.raises(RegistryUnavailableError):
        client.verify_entity(ACTIVE_ENTITY.uscc, ACTIVE_ENTITY.name)
    assert sleeps == [0.1, 0.2]  # exponential backoff, two retries
    assert gateway.state.take_failure(path) is None  # all three injected failures used


def test_sms_is_not_retried(gateway):
    path = "/sms/v1/send"
    client = http_client(gateway, retries=2)
    gateway.state.inject_failures(path, 1, 503)
    with pytest.raises(SmsGatewayError):
        client.send("otp_login", "+8613900000043", {"code": "1"})
    # A retry would have used the one failure and then succeeded; the outbox is empty.
    resp = signed(gateway, "GET", "/sms/v1/outbox", query="phone=%2B8613900000043")
    assert resp.json()["messages"] == []


def test_breaker_opens_on_closed_port():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    now = [0.0]
    client = GatewayClient(f"http://127.0.0.1:{port}", KEY, SECRET, timeout=1.0, retries=0,
                           breaker_threshold=3, breaker_reset=30.0, monotonic=lambda: now[0])
    for _ in range(3):
        with pytest.raises(RegistryUnavailableError) as info:
            client.verify_person(ALIVE.name, ALIVE.id_number)
        assert "circuit open" not in str(info.value)
    assert client.breaker.is_open
    with pytest.raises(RegistryUnavailableError, match="circuit open"):
        client.verify_person(ALIVE.name, ALIVE.id_number)
    now[0] = 31.0  # after breaker_reset, one trial goes out; it fails: open again
    with pytest.raises(RegistryUnavailableError) as info:
        client.verify_person(ALIVE.name, ALIVE.id_number)
    assert "circuit open" not in str(info.value)
    with pytest.raises(RegistryUnavailableError, match="circuit open"):
        client.verify_person(ALIVE.name, ALIVE.id_number)


def test_breaker_fails_fast_then_closes_after_a_good_trial(gateway):
    path = "/carrier/v1/verify"
    now = [0.0]
    client = http_client(gateway, retries=0, breaker_threshold=2, breaker_reset=10.0,
                         monotonic=lambda: now[0])
    gateway.state.inject_failures(path, 2, 502)
    for _ in range(2):
        with pytest.raises(RegistryUnavailableError):
            client.verify_phone(ALIVE.name, ALIVE.id_number, ALIVE.phone)
    before = gateway.state.requests[path]
    with pytest.raises(RegistryUnavailableError, match="circuit open"):
        client.verify_phone(ALIVE.name, ALIVE.id_number, ALIVE.phone)
    assert gateway.state.requests[path] == before  # failed fast: nothing sent
    now[0] = 10.5
    assert client.verify_phone(ALIVE.name, ALIVE.id_number,
                               ALIVE.phone).result is CarrierResult.MATCH
    assert not client.breaker.is_open


def test_only_positive_answers_are_cached(gateway):
    path = "/social-security/v1/card"
    client = http_client(gateway, cache_ttl=600)
    start = gateway.state.requests[path]
    first = client.check_card(ALIVE.id_number, ALIVE.card_number)
    second = client.check_card(ALIVE.id_number, ALIVE.card_number)
    assert first.status is CardStatus.ACTIVE and second == first
    assert gateway.state.requests[path] == start + 1  # the second came from the cache
    client.check_card(LOST.id_number, LOST.card_number)
    client.check_card(LOST.id_number, LOST.card_number)
    assert gateway.state.requests[path] == start + 3  # negatives are asked every time
    # An error is not cached either: after an outage the registry is asked again.
    gateway.state.inject_failures("/population/v1/verify", 3, 503)
    with pytest.raises(RegistryUnavailableError):
        client.verify_person(ALIVE.name, ALIVE.id_number)
    assert client.verify_person(ALIVE.name, ALIVE.id_number).result is PopulationResult.MATCH


def test_cache_expires(gateway):
    path = "/population/v1/verify"
    now = [0.0]
    client = http_client(gateway, cache_ttl=60, monotonic=lambda: now[0])
    start = gateway.state.requests[path]
    client.verify_person(DEMO_PEOPLE[2].name, DEMO_PEOPLE[2].id_number)
    now[0] = 59.0
    client.verify_person(DEMO_PEOPLE[2].name, DEMO_PEOPLE[2].id_number)
    assert gateway.state.requests[path] == start + 1
    now[0] = 61.0
    client.verify_person(DEMO_PEOPLE[2].name, DEMO_PEOPLE[2].id_number)
    assert gateway.state.requests[path] == start + 2


def test_no_personal_data_in_errors_or_logs(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    client = http_client(gateway, retries=1)
    secrets_seen = (ALIVE.id_number, ALIVE.phone, ALIVE.phone[3:], ALIVE.name,
                    ALIVE.card_number, SECRET)
    errors: list[Exception] = []
    for path in ("/population/v1/verify", "/carrier/v1/verify", "/social-security/v1/card",
                 "/face/v1/compare", "/sms/v1/send"):
        gateway.state.inject_failures(path, 2, 503)
    calls = [
        lambda: client.verify_person(ALIVE.name, ALIVE.id_number),
        lambda: client.verify_phone(ALIVE.name, ALIVE.id_number, ALIVE.phone),
        lambda: client.check_card(ALIVE.id_number, ALIVE.card_number),
        lambda: client.compare_face(ALIVE.id_number, ALIVE.name, "pass-x"),
        lambda: client.send("otp_login", ALIVE.phone, {"code": "1"}),
        lambda: client.verify_person(ALIVE.name, ALIVE.id_number[:17] + "Y"),
        lambda: GatewayClient(gateway.url, KEY, "wrong").verify_person(ALIVE.name,
                                                                       ALIVE.id_number),
    ]
    for call in calls:
        with pytest.raises((RegistryUnavailableError, SmsGatewayError, ValueError)) as info:
            call()
        errors.append(info.value)
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(client)]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        for secret in secrets_seen:
            assert secret not in text


def test_sandbox_keys_refuse_the_development_pair_in_production():
    import click

    from idp.cli.sandbox import DEV_ACCESS_KEY, sandbox_keys

    assert sandbox_keys({}) == {DEV_ACCESS_KEY: "sandbox-dev-secret-not-for-production"}
    assert sandbox_keys({"IDP_SANDBOX_KEYS": "a=1, b=2", "IDP_MODE": "production"}) == {
        "a": "1", "b": "2"}
    with pytest.raises(click.ClickException):
        sandbox_keys({"IDP_MODE": "production"})
    with pytest.raises(click.ClickException):
        sandbox_keys({"IDP_SANDBOX_KEYS": "no-secret"})
