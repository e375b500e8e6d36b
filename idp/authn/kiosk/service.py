"""Kiosk login rules.

A kiosk is a registered client (``kiosk`` set, ``private_key_jwt``
authentication). It reads a card and posts what the card holds as a JWT
signed with one of its registered keys (the *card read*): ``iss`` the
kiosk's client_id, ``aud`` the kiosk endpoint, ``iat``, ``exp`` (at most
``kiosk.card_read_max_lifetime`` seconds later), a unique ``jti``,
``card_type`` (``resident_id`` or ``social_security``), ``id_number``,
``name`` and, for a social security card, ``card_number``. Each card read is
accepted once (replay cache). The card is checked with the registries
(population match; for a social security card also an active card), and
the account verified with that ID number gets a one-time login ticket,
which the kiosk's own browser redeems for a short SSO session with ``amr``
``hwk``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from connectors.registries import CardStatus, PopulationResult
from idp.accounts import service as accounts
from idp.accounts.identifiers import (
    IdentifierError,
    mask_resident_id,
    normalize_name,
    parse_card_number,
    parse_resident_id,
)
from idp.accounts.models import Account
from idp.accounts.verification import (
    VerificationUnavailableError,
    ask_registry,
    assurance_level,
)
from idp.audit.service import record
from idp.extensions import db
from idp.oidc.tokens import ACCEPTED_ALGS, sole_audience
from idp.runtime import Runtime
from idp.security import random_token
from idp.timeutil import epoch

CARD_TYPES = ("resident_id", "social_security")
_TICKET = "kiosk:ticket:"


class KioskError(Exception):
    """A kiosk request is refused.

    :ivar error: the error code of the JSON answer (``invalid_request``,
        ``access_denied``, ``temporarily_unavailable``).
    :ivar status: its HTTP status.
    :ivar description: a short reason without personal data.
    """

    def __init__(self, error: str, status: int, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.status = status
        self.description = description


@dataclass(frozen=True)
class CardRead:
    """A verified card read.

    :ivar card_type: ``resident_id`` or ``social_security``.
    :ivar id_number: the normalised 18-character ID number.
    :ivar name: the normalised name on the card.
    :ivar card_number: the social security card number, if any.
    :ivar jti: the card read's unique id.
    """

    card_type: str
    id_number: str
    name: str
    card_number: str | None
    jti: str


@dataclass(frozen=True)
class Ticket:
    """A one-time login ticket for the kiosk's browser.

    :ivar value: the secret to put in the login URL.
    :ivar expires_in: seconds it stays valid.
    :ivar acr: the ``acr`` the login will have.
    """

    value: str
    expires_in: int
    acr: str


def _field(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise KioskError("invalid_request", 400, f"The card read needs '{name}'.")
    return value


def read_card(rt: Runtime, client, token: str) -> CardRead:
    """Check the signature, audience, lifetime and replay of a card read.

    The audience is the kiosk endpoint alone, as a string or a one-element
    array (:func:`idp.oidc.tokens.sole_audience`, the rule of client assertions).

    :raises KioskError: ``invalid_request`` for anything wrong with it.
    """
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        raise KioskError("invalid_request", 400, "The card read is not a signed JWT.")
    try:
        decoded = jwt.decode(token, KeySet.import_key_set({"keys": client.public_keys()}),
                             algorithms=list(ACCEPTED_ALGS))
    except (JoseError, ValueError, KeyError, TypeError, RecursionError):
        raise KioskError("invalid_request", 400, "The card read's signature is invalid.") \
            from None
    claims = decoded.claims
    settings = rt.settings["kiosk"]
    leeway = rt.settings["tokens"]["clock_leeway"]
    now = epoch()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        raise KioskError("invalid_request", 400, "The card read needs integer iat and exp.")
    if (claims.get("iss") != client.client_id
            or sole_audience(claims.get("aud")) != rt.issuer + "/kiosk/login"):
        raise KioskError("invalid_request", 400, "The card read names another kiosk or "
                                                 "audience.")
    if exp < now - leeway or iat > now + leeway or exp - iat > settings["card_read_max_lifetime"]:
        raise KioskError("invalid_request", 400, "The card read is expired or lives too long.")
    jti = _field(claims, "jti")
    card_type = _field(claims, "card_type")
    if card_type not in CARD_TYPES:
        raise KioskError("invalid_request", 400, "Unknown card_type.")
    try:
        number = parse_resident_id(_field(claims, "id_number")).number
        card = (parse_card_number(_field(claims, "card_number"))
                if card_type == "social_security" else None)
    except IdentifierError as exc:
        raise KioskError("invalid_request", 400, f"The card read is invalid ({exc.code}).") \
            from None
    name = normalize_name(_field(claims, "name"))
    if not rt.store.add(f"jti:kiosk:{client.client_id}:{jti}", {"seen": True},
                        max(exp - now + leeway, 1)):
        raise KioskError("invalid_request", 400, "This card read was already used.")
    return CardRead(card_type, number, name, card, jti)


def _check_registries(rt: Runtime, card: CardRead) -> str:
    """The card's holder is alive and registered under that name, and a
    social security card is active. Returns the registry reference."""
    person = ask_registry(rt, "population_registry",
                          lambda gw: gw.verify_person(card.name, card.id_number))
    if person.result is not PopulationResult.MATCH:
        raise KioskError("access_denied", 403, "The card could not be verified.")
    if card.card_type == "social_security":
        status = ask_registry(rt, "social_security_card",
                              lambda gw: gw.check_card(card.id_number, card.card_number))
        if status.status is not CardStatus.ACTIVE:
            raise KioskError("access_denied", 403, "The card is not active.")
    return person.reference


def kiosk_login(rt: Runtime, client, token: str, ip: str | None) -> Ticket:
    """Verify a card read from ``client`` and issue a login ticket for the
    account verified with that ID number. Audited.

    :raises KioskError: not a kiosk, an invalid or replayed card read, a
        card the registries do not confirm, no such account, or a registry
        outage (``temporarily_unavailable``).
    """
    if not client.kiosk:
        raise KioskError("unauthorized_client", 400, "This client is not a kiosk.")
    card = read_card(rt, client, token)
    try:
        reference = _check_registries(rt, card)
    except VerificationUnavailableError:
        raise KioskError("temporarily_unavailable", 503,
                         "The verification service is unavailable.") from None
    except KioskError:
        record("kiosk.card_refused", "failure", client_id=client.client_id, ip=ip,
               card_type=card.card_type, id_number=mask_resident_id(card.id_number))
        db.session.commit()
        raise
    account = accounts.find_by_resident_id(rt, card.id_number)
    if account is None or not account.is_active:
        record("kiosk.card_refused", "failure", client_id=client.client_id, ip=ip,
               card_type=card.card_type, reason="no_account")
        db.session.commit()
        raise KioskError("access_denied", 403, "No active account is verified with this "
                                               "ID number.")
    ticket = random_token(32)
    ttl = rt.settings["kiosk"]["ticket_ttl"]
    rt.store.put(_TICKET + hashlib.sha256(ticket.encode()).hexdigest(),
                 {"account_id": account.id, "client_id": client.client_id,
                  "card_type": card.card_type, "reference": reference}, ttl)
    record("kiosk.card_verified", account_id=account.id, client_id=client.client_id, ip=ip,
           card_type=card.card_type, reference=reference)
    db.session.commit()
    return Ticket(ticket, ttl, rt.acr.acr_of(rt.acr.achieved(assurance_level(account),
                                                            ["hwk"])))


def redeem_ticket(rt: Runtime, ticket: str | None) -> tuple[Account, dict] | None:
    """Take a login ticket (once): ``(account, ticket data)``, or None."""
    if not ticket or len(ticket) > 128:
        return None
    data = rt.store.take(_TICKET + hashlib.sha256(ticket.encode()).hexdigest())
    account = accounts.get_account(data["account_id"]) if data else None
    if account is None or not account.is_active:
        return None
    return account, data
