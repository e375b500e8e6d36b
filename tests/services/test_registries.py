"""The registries the provider holds (``Runtime.registries``), below HTTP:
each field is asked for on its own, and a field left out (None, "not
configured") gives the answer its callers document: verification is
unavailable and nothing is recorded, an SMS code is refused as
unavailable, a notice is not sent."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import date, timedelta

import pytest

from connectors.http import GatewayClient, from_settings
from connectors.identifiers import id_check_character
from connectors.registries import (
    FaceComparison,
    FaceDecision,
    PopulationCheck,
    PopulationResult,
    Registries,
)
from connectors.sms import SmsReceipt


class Population:
    """A population registry that confirms everyone."""

    def verify_person(self, name: str, id_number: str) -> PopulationCheck:
        return PopulationCheck(PopulationResult.MATCH, f"pop-{uuid.uuid4().hex[:8]}")


class Face:
    """A face comparison service that passes everyone."""

    def compare_face(self, id_number: str, name: str, liveness_token: str) -> FaceComparison:
        return FaceComparison(0.97, FaceDecision.PASS, f"face-{uuid.uuid4().hex[:8]}")


class Outbox:
    """An SMS gateway that keeps what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, template: str, phone: str, params) -> SmsReceipt:
        self.sent.append((template, phone))
        return SmsReceipt(f"sms-{len(self.sent)}")


def _id_number() -> str:
    born = date(1950, 1, 1) + timedelta(days=random.randrange(18000))
    first17 = f"990101{born:%Y%m%d}{random.randrange(1000):03d}"
    return first17 + id_check_character(first17)


def _phone() -> str:
    return f"+86139{random.randrange(10**8):08d}"


def _gateway_settings(**values) -> dict:
    return {"gateway": {"url": "", "access_key": "", "secret": "", "timeout": 5.0,
                        "retries": 2, "breaker_threshold": 5, "breaker_reset": 30.0,
                        "cache_ttl": 600, **values}}


def test_without_a_gateway_url_no_registry_is_configured(provider):
    assert from_settings(_gateway_settings()) == Registries()
    assert provider.runtime.registries == Registries()


def test_one_gateway_client_serves_every_registry():
    registries = from_settings(_gateway_settings(url="https://gateway.example.test",
                                                 access_key="k", secret="s"))
    served = {id(getattr(registries, field.name)) for field in dataclasses.fields(registries)}
    assert len(served) == 1 and isinstance(registries.population, GatewayClient)


def test_a_registry_left_out_makes_its_check_unavailable(provider):
    from idp.accounts import verification
    from idp.accounts.service import find_by_username

    username, _, _ = provider.create_account()
    rt = dataclasses.replace(provider.runtime, registries=Registries(population=Population()))
    with provider.app.app_context():
        account = find_by_username(username)
        verification.verify_population(rt, account, "王芳", _id_number(), "192.0.2.7")
        assert verification.assurance_level(account) == 2
        evidence = len(verification.evidence_of(account))

        with pytest.raises(verification.VerificationUnavailableError,
                           match="no registry is configured for face_comparison"):
            verification.verify_face(rt, account, "liveness-token", "192.0.2.7")
        assert len(verification.evidence_of(account)) == evidence
        assert verification.assurance_level(account) == 2

        with_face = dataclasses.replace(rt, registries=dataclasses.replace(
            rt.registries, face=Face()))
        verification.verify_face(with_face, account, "liveness-token", "192.0.2.7")
        assert verification.assurance_level(account) == 3


def test_ask_registry_never_calls_a_registry_left_out():
    from idp.accounts.verification import VerificationUnavailableError, ask_registry

    asked = []
    with pytest.raises(VerificationUnavailableError):
        ask_registry("population_registry", None, asked.append)
    assert asked == []
    assert ask_registry("population_registry", Population(),
                        lambda registry: registry.verify_person("王芳", _id_number())
                        ).result is PopulationResult.MATCH


def test_without_an_sms_gateway_codes_are_unavailable_and_notices_not_sent(provider):
    from idp.accounts.notify import notify_phone
    from idp.authn.service import SmsUnavailableError, send_sms_code

    outbox = Outbox()
    with_sms = dataclasses.replace(provider.runtime, registries=Registries(sms=outbox))
    without = dataclasses.replace(provider.runtime,
                                  registries=Registries(population=Population()))
    phone = _phone()
    with provider.app.app_context():
        with pytest.raises(SmsUnavailableError, match="no SMS gateway is configured"):
            send_sms_code(without, phone, "login", "192.0.2.8")
        assert notify_phone(without, phone, "password_changed") is False

        send_sms_code(with_sms, phone, "login", "192.0.2.8")
        assert notify_phone(with_sms, phone, "password_changed") is True
    assert outbox.sent == [("otp_login", phone), ("password_changed", phone)]
