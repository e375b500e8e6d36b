"""Interfaces of the authoritative registries the provider verifies identities
against: population, legal-entity, social-security, carrier and face comparison;
and :class:`Registries`, the set of them (with the SMS gateway) the provider
holds, each typed by its Protocol and None when not configured.

Each answer is a frozen dataclass whose outcome is an :class:`enum.Enum`
member, with the registry's ``reference`` kept as evidence. An outage is an
exception (:class:`RegistryUnavailableError`), never a negative answer, so a
caller can neither lower nor raise an assurance level because a registry
could not be reached.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from connectors.sms import SmsGateway


class RegistryUnavailableError(Exception):
    """The verification service is unavailable, try again later.

    Raised on timeouts, transport errors, 5xx answers, malformed answers and
    while the circuit breaker is open. Its message never holds personal data.
    """


class GatewayRequestError(ValueError):
    """The gateway refused the request (HTTP 4xx): a bug or misconfiguration
    on our side (bad signature, clock skew, invalid field), not an outage.

    :ivar code: the gateway's ``error`` (``invalid_request``, ``bad_signature``,
        ``clock_skew``, ``replayed_nonce``, ``unknown_key``...).
    :ivar field: the offending field for ``invalid_request``, else None.
    :ivar status: the HTTP status code.
    """

    def __init__(self, code: str, status: int, field: str | None = None) -> None:
        detail = f" (field {field})" if field else ""
        super().__init__(f"gateway refused the request: {code}{detail}, HTTP {status}")
        self.code = code
        self.field = field
        self.status = status


class PopulationResult(enum.Enum):
    """Outcome of a name + resident ID number check."""

    MATCH = "match"
    MISMATCH = "mismatch"  #: the number exists under another name
    NOT_FOUND = "not_found"
    DECEASED = "deceased"
    CANCELLED = "cancelled"  #: the registration was cancelled (e.g. emigrated)


class LegalEntityResult(enum.Enum):
    """Outcome of a credit code + entity name (+ legal representative) check."""

    MATCH = "match"
    MISMATCH = "mismatch"
    NOT_FOUND = "not_found"
    REVOKED = "revoked"  #: business licence revoked or entity deregistered
    #: the entity matches, but the person named is not its legal representative
    REPRESENTATIVE_MISMATCH = "representative_mismatch"


class CardStatus(enum.Enum):
    """Status of a social security card for an ID number."""

    ACTIVE = "active"
    LOST = "lost"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"  #: no such card for this ID number


class CarrierResult(enum.Enum):
    """Outcome of the carrier three-element check (name, ID number, phone)."""

    MATCH = "match"
    MISMATCH = "mismatch"
    NOT_FOUND = "not_found"


class FaceDecision(enum.Enum):
    """Decision of the face comparison service."""

    PASS = "pass"
    FAIL = "fail"
    RETRY = "retry"  #: liveness not proven; the user should try again


@dataclass(frozen=True)
class PopulationCheck:
    """:ivar result: the outcome. :ivar reference: the registry's reference (evidence)."""

    result: PopulationResult
    reference: str


@dataclass(frozen=True)
class LegalEntityCheck:
    """:ivar result: the outcome. :ivar reference: the registry's reference."""

    result: LegalEntityResult
    reference: str


@dataclass(frozen=True)
class CardCheck:
    """:ivar status: the card's status. :ivar reference: the registry's reference."""

    status: CardStatus
    reference: str


@dataclass(frozen=True)
class CarrierCheck:
    """:ivar result: the outcome. :ivar reference: the carrier's reference."""

    result: CarrierResult
    reference: str


@dataclass(frozen=True)
class FaceComparison:
    """:ivar score: similarity 0..1. :ivar decision: the service's decision (use
    this, not the score). :ivar reference: the service's reference."""

    score: float
    decision: FaceDecision
    reference: str


class PopulationRegistry(Protocol):
    """The population (household registration) registry."""

    def verify_person(self, name: str, id_number: str) -> PopulationCheck:
        """Check that ``id_number`` (18 characters, GB 11643) belongs to ``name``.

        :raises RegistryUnavailableError: the registry cannot answer now.
        :raises GatewayRequestError: the request was refused (e.g. malformed number).
        """


class LegalEntityRegistry(Protocol):
    """The legal-entity (market supervision) registry."""

    def verify_entity(self, uscc: str, name: str, representative_name: str | None = None,
                      representative_id_number: str | None = None) -> LegalEntityCheck:
        """Check that the credit code ``uscc`` (GB 32100) belongs to ``name``
        and, when given, that the person ``representative_name`` with
        ``representative_id_number`` is its registered legal representative.

        :raises RegistryUnavailableError: the registry cannot answer now.
        :raises GatewayRequestError: the request was refused.
        """


class SocialSecurityRegistry(Protocol):
    """The social-security card registry."""

    def check_card(self, id_number: str, card_number: str) -> CardCheck:
        """The status of card ``card_number`` issued to ``id_number``.

        :raises RegistryUnavailableError: the registry cannot answer now.
        :raises GatewayRequestError: the request was refused.
        """


class CarrierVerifier(Protocol):
    """The mobile carriers' real-name check."""

    def verify_phone(self, name: str, id_number: str, phone: str) -> CarrierCheck:
        """Check that ``phone`` (E.164) is registered to ``name`` and ``id_number``.

        :raises RegistryUnavailableError: the carrier cannot answer now.
        :raises GatewayRequestError: the request was refused.
        """


class FaceComparator(Protocol):
    """The registry's face comparison service. The provider sends only a
    liveness token obtained by the client app; it never handles a face image."""

    def compare_face(self, id_number: str, name: str, liveness_token: str) -> FaceComparison:
        """Compare the live capture behind ``liveness_token`` with the registry photo.

        :raises RegistryUnavailableError: the service cannot answer now.
        :raises GatewayRequestError: the request was refused.
        """


@dataclass(frozen=True)
class Registries:
    """The registries and gateways the provider calls, one field each, typed
    by its Protocol; None when that one is not configured.

    Today one data-sharing gateway serves every field or none
    (:func:`connectors.http.from_settings`), but callers ask for the field
    they need and answer "unavailable" when it is None, so a registry
    reached another way, or a new connector, is a Protocol, an
    implementation and a field here.

    :ivar population: the population registry (name + resident ID number).
    :ivar legal_entity: the legal-entity registry (credit code, legal representative).
    :ivar social_security: the social-security card registry.
    :ivar carrier: the mobile carriers' real-name check.
    :ivar face: the face comparison service.
    :ivar sms: the SMS gateway (one-time codes, notices).
    """

    population: PopulationRegistry | None = None
    legal_entity: LegalEntityRegistry | None = None
    social_security: SocialSecurityRegistry | None = None
    carrier: CarrierVerifier | None = None
    face: FaceComparator | None = None
    sms: SmsGateway | None = None
