"""Kiosk login rules.

A kiosk is a registered client (``kiosk`` set, ``private_key_jwt``
authentication). It reads a card and posts what the card holds as a JWT
signed with one of its registered keys (the *card read*): ``iss`` the
kiosk's client_id, ``aud`` the kiosk endpoint, ``iat``, ``exp`` (at most
``kiosk.card_read_max_lifetime`` seconds later), a unique ``jti``,
``card_type`` (``resident_id`` or ``social_security``), ``id_number``,
``name`` and, for a social security card, ``card_number``. Each card read is
accepted once (replay cache). The card is checked with the registries
(population match; for a social security card also an active card).

Possession outranks knowledge (idp.accounts.verification). When the
account verified with that ID number has a proof of possession of it, it
gets a one-time login ticket, which the kiosk's own browser redeems for a
short SSO session with ``amr`` ``hwk``. Otherwise -- no account holds the
number, or one holds it by name and number only, which may be anyone who
knew them -- the card logs into nobody: the ticket leads the kiosk's
browser to *link* the card (:func:`begin_link`). The person signs in (or
registers) there, puts the card on the reader again, and links it to their
account (:func:`link_card`), which takes the number from a knowledge-only
holder. The second read is what ties the card to the sign-in: a kiosk's
browser serves one stranger after another, and a card left waiting in it
must not go to whoever signs in next.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from connectors.identifiers import mask_resident_id
from connectors.registries import CardStatus, PopulationResult
from idp import sessions
from idp.accounts import service as accounts
from idp.accounts.identifiers import (
    IdentifierError,
    normalize_name,
    parse_card_number,
    parse_resident_id,
)
from idp.accounts.models import Account
from idp.accounts.pii import PiiError
from idp.accounts.verification import (
    VerificationUnavailableError,
    ask_registry,
    assurance_level,
    holds_by_knowledge_only,
    verify_card_read,
)
from idp.audit.service import record, record_deferred
from idp.oidc.acr import combine_amr
from idp.oidc.tokens import ACCEPTED_ALGS, sole_audience
from idp.runtime import Runtime
from idp.security import random_token
from idp.sessions import SsoSession, load_session, save_session
from idp.timeutil import epoch

CARD_TYPES = ("resident_id", "social_security")
_TICKET = "kiosk:ticket:"
_LINK_TICKET = "kiosk:link-ticket:"
_LINK = "kiosk:link:"


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
    :ivar acr: the ``acr`` the login will have; None for a link ticket.
    :ivar linked: True for a login ticket (the card's account proved
        possession of the number); False for a ticket that leads to linking
        the card to an account (:func:`begin_link`).
    """

    value: str
    expires_in: int
    acr: str | None
    linked: bool = True


@dataclass(frozen=True)
class CardLink:
    """A card read waiting, in one kiosk browser, to be linked to the
    account that signs in there (kept in the store with its numbers
    encrypted, for ``kiosk.link_ttl`` seconds).

    :ivar card_type: ``resident_id`` or ``social_security``.
    :ivar name: the name on the card, as the population registry matched it.
    :ivar id_number: the card's ID number.
    :ivar card_number: a social security card's number, else None.
    :ivar population_reference: the population registry's reference.
    :ivar card_reference: the card registry's reference (the population
        registry's for a resident ID card).
    :ivar client_id: the kiosk that read the card.
    :ivar held: an account held the number by knowledge only at the read.
    :ivar created: Unix seconds of the first read; the link needs a sign-in
        after it.
    :ivar presented: Unix seconds of the card's read after that sign-in
        (the card back on the reader), or None until then.
    """

    card_type: str
    name: str
    id_number: str
    card_number: str | None
    population_reference: str
    card_reference: str
    client_id: str
    held: bool
    created: int
    presented: int | None = None

    @property
    def masked_id_number(self) -> str:
        """The ID number as pages show it."""
        return mask_resident_id(self.id_number)

    def ready_for(self, sso: SsoSession) -> bool:
        """True when ``sso`` was signed in after the first read and the card
        was read again since: the card is on the reader of the person who
        signed in."""
        return self.presented is not None and self.presented >= sso.auth_time >= self.created


class CardLinkError(Exception):
    """A card cannot be linked now.

    :ivar code: ``expired`` (no card waits, or too late), ``login_required``
        (the browser's session began before the card was read),
        ``card_required`` (the card was not read again after the sign-in),
        or ``refused`` (the account is verified with another number, or
        another account proved possession of this one).
    :ivar message: what the person can do, translated when rendered.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message


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


def _check_registries(rt: Runtime, card: CardRead) -> tuple[str, str]:
    """The card's holder is alive and registered under that name, and a
    social security card is active. Returns the registry references of the
    person and of the card (the person's again for a resident ID card)."""
    person = ask_registry("population_registry", rt.registries.population,
                          lambda registry: registry.verify_person(card.name, card.id_number))
    if person.result is not PopulationResult.MATCH:
        raise KioskError("access_denied", 403, "The card could not be verified.")
    if card.card_type == "social_security":
        status = ask_registry("social_security_card", rt.registries.social_security,
                              lambda registry: registry.check_card(card.id_number,
                                                                   card.card_number))
        if status.status is not CardStatus.ACTIVE:
            raise KioskError("access_denied", 403, "The card is not active.")
        return person.reference, status.reference
    return person.reference, person.reference


def kiosk_login(rt: Runtime, client, token: str, ip: str | None) -> Ticket:
    """Verify a card read from ``client`` and issue a login ticket for the
    account verified with that ID number, if that account has a proof of
    possession of it; else a link ticket (:func:`begin_link`). Audited.

    :raises KioskError: not a kiosk, an invalid or replayed card read, a
        card the registries do not confirm, an inactive account that proved
        possession of the number, or a registry outage
        (``temporarily_unavailable``).
    """
    if not client.kiosk:
        raise KioskError("unauthorized_client", 400, "This client is not a kiosk.")
    card = read_card(rt, client, token)
    try:
        reference, card_reference = _check_registries(rt, card)
    except VerificationUnavailableError:
        raise KioskError("temporarily_unavailable", 503,
                         "The verification service is unavailable.") from None
    except KioskError:
        record_deferred(rt.audit, "kiosk.card_refused", "failure", client_id=client.client_id,
                        ip=ip, card_type=card.card_type,
                        id_number=mask_resident_id(card.id_number))
        raise
    account = accounts.find_by_resident_id(rt, card.id_number)
    held = account is not None and holds_by_knowledge_only(account)
    if account is None or held:
        # Whoever verified the number by name and number alone may be
        # anyone who knew them: the card logs into nobody but is linked to
        # the account its holder signs in to.
        return _link_ticket(rt, client, card, reference, card_reference, held, ip)
    if not account.is_active:
        record_deferred(rt.audit, "kiosk.card_refused", "failure", client_id=client.client_id,
                        ip=ip, card_type=card.card_type, reason="no_account")
        raise KioskError("access_denied", 403, "No active account is verified with this "
                                               "ID number.")
    ticket = random_token(32)
    ttl = rt.settings["kiosk"]["ticket_ttl"]
    rt.store.put(_TICKET + hashlib.sha256(ticket.encode()).hexdigest(),
                 {"account_id": account.id, "client_id": client.client_id,
                  "card_type": card.card_type, "reference": reference}, ttl)
    record("kiosk.card_verified", account_id=account.id, client_id=client.client_id, ip=ip,
           card_type=card.card_type, reference=reference)
    return Ticket(ticket, ttl, rt.acr.acr_of(rt.acr.achieved(assurance_level(account),
                                                            ["hwk"])))


def _link_ticket(rt: Runtime, client, card: CardRead, reference: str, card_reference: str,
                 held: bool, ip: str | None) -> Ticket:
    """A one-time ticket that leads the kiosk's browser to link ``card``
    (numbers kept encrypted). Audited (``kiosk.card_unlinked``; not committed)."""
    ticket = random_token(32)
    ttl = rt.settings["kiosk"]["ticket_ttl"]
    rt.store.put(_LINK_TICKET + _digest(ticket), {
        "card_type": card.card_type, "name": card.name,
        "id_number": rt.pii.encrypt("resident_id", card.id_number),
        "index": rt.pii.blind_index("resident_id", card.id_number),
        "card_number": (rt.pii.encrypt("card_number", card.card_number)
                        if card.card_number else None),
        "population_reference": reference, "card_reference": card_reference,
        "client_id": client.client_id, "held": held}, ttl)
    record("kiosk.card_unlinked", client_id=client.client_id, ip=ip, card_type=card.card_type,
           reference=reference, holder="knowledge_only" if held else "none")
    return Ticket(ticket, ttl, None, linked=False)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def begin_link(rt: Runtime, ticket: str | None, previous: str | None,
               waiting: str | None, sso: SsoSession | None) -> tuple[str, bool] | None:
    """The kiosk's browser redeems a link ticket (once).

    When the card already waits in this browser (``waiting``) and ``sso``,
    the browser's live session, was signed in after that first read, this
    read is the card back on the reader: the link can now be confirmed
    (:func:`link_card`). Otherwise the card starts waiting, for
    ``kiosk.link_ttl`` seconds, for the person to sign in there, and the
    browser's SSO session, if any (the previous person's), ends.

    :param previous: the browser's SSO session cookie, if any.
    :param waiting: the secret of the card waiting in the browser, if any.
    :param sso: the browser's live SSO session (of an active account), if any.
    :returns: ``(secret, presented)``: the secret the browser keeps (in its
        signed session cookie) to find the waiting card, and whether it was
        presented again after a sign-in; None when the ticket was used or
        expired.
    """
    if not ticket or len(ticket) > 128:
        return None
    data = rt.store.take(_LINK_TICKET + _digest(ticket))
    if data is None:
        return None
    card = pending_link(rt, waiting)
    now = epoch()
    if (card is not None and sso is not None and sso.auth_time >= card.created
            and rt.pii.blind_index("resident_id", card.id_number) == data["index"]):
        rt.store.put(_LINK + _digest(waiting),
                     {**data, "created": card.created, "presented": now},
                     rt.settings["kiosk"]["link_ttl"])
        return waiting, True
    replaced = load_session(rt.store, previous)
    if replaced is not None:
        sessions.end(rt, replaced, "kiosk_card", revoke_grants=False)
    cancel_link(rt, waiting)
    secret = random_token(32)
    rt.store.put(_LINK + _digest(secret), {**data, "created": now, "presented": None},
                 rt.settings["kiosk"]["link_ttl"])
    return secret, False


def pending_link(rt: Runtime, secret: str | None) -> CardLink | None:
    """The card waiting to be linked in the browser holding ``secret``, or None."""
    if not secret or len(secret) > 128:
        return None
    data = rt.store.get(_LINK + _digest(secret))
    if data is None:
        return None
    card_number = data["card_number"]
    try:
        id_number = rt.pii.decrypt("resident_id", data["id_number"])
        card_number = rt.pii.decrypt("card_number", card_number) if card_number else None
    except PiiError:
        return None
    return CardLink(
        card_type=data["card_type"], name=data["name"], id_number=id_number,
        card_number=card_number, population_reference=data["population_reference"],
        card_reference=data["card_reference"], client_id=data["client_id"],
        held=data["held"], created=data["created"], presented=data["presented"])


def cancel_link(rt: Runtime, secret: str | None) -> None:
    """Forget the card waiting in the browser holding ``secret``."""
    if secret and len(secret) <= 128:
        rt.store.delete(_LINK + _digest(secret))


#: What the person must do before a waiting card can be linked.
CARD_AGAIN = _l("Put your card on the reader again to link it to this account.")


def link_outcome(rt: Runtime, account: Account, link: CardLink) -> str:
    """What linking ``link`` to ``account`` would do, for the confirmation
    page: ``refused`` (the account is verified with another number),
    ``strengthen`` (it holds this number already), ``take`` (another
    account holds it by knowledge only and would lose it), ``held``
    (another account proved possession of it) or ``bind``."""
    own = accounts.resident_id(rt, account) if account.resident_id_enc else None
    if own is not None:
        return "strengthen" if own == link.id_number else "refused"
    holder = accounts.find_by_resident_id(rt, link.id_number)
    if holder is None:
        return "bind"
    return "take" if holds_by_knowledge_only(holder) else "held"


def link_card(rt: Runtime, account: Account, sso: SsoSession, secret: str | None,
              ip: str | None) -> SsoSession:
    """Link the card waiting in this browser to ``account``, signed in
    there (``sso``) after the card was read and before it was read again:
    the account is verified with
    the card's ID number (population match and card read, a possession
    proof: ``idp.accounts.verification.verify_card_read``), taken from an
    account that held it by knowledge only. The session then becomes a
    kiosk session: its ``amr`` gains ``hwk`` and it ends within
    ``kiosk.session_ttl`` seconds. Audited (``kiosk.card_linked``); not
    committed.

    :returns: the updated session (its cookie must be set again).
    :raises CardLinkError: no card waits (``expired``), the session began
        before the read (``login_required``), the card was not read again
        since the sign-in (``card_required``), or the link is refused
        (``refused``; the card keeps waiting for another account).
    """
    link = pending_link(rt, secret)
    if link is None:
        raise CardLinkError("expired", _l("No card is waiting to be linked here. Read the card "
                                          "at the kiosk again."))
    if sso.auth_time < link.created or sso.account_id != account.id:
        raise CardLinkError("login_required", _l("Sign in after reading the card."))
    if not link.ready_for(sso):
        raise CardLinkError("card_required", CARD_AGAIN)
    try:
        verify_card_read(rt, account, name=link.name, id_number=link.id_number,
                         card_type=link.card_type, card_number=link.card_number,
                         population_reference=link.population_reference,
                         card_reference=link.card_reference, kiosk=link.client_id, ip=ip)
    except accounts.AccountError as exc:
        raise CardLinkError("refused", exc.message) from None
    cancel_link(rt, secret)
    sso.amr = combine_amr(sso.amr, "hwk")
    sso.expires_at = min(sso.expires_at, epoch() + rt.settings["kiosk"]["session_ttl"])
    save_session(rt.store, sso)
    record("kiosk.card_linked", account_id=account.id, client_id=link.client_id, ip=ip,
           card_type=link.card_type, sid=sso.sid, reference=link.population_reference)
    return sso


def redeem_ticket(rt: Runtime, ticket: str | None) -> tuple[Account, dict] | None:
    """Take a login ticket (once): ``(account, ticket data)``, or None."""
    if not ticket or len(ticket) > 128:
        return None
    data = rt.store.take(_TICKET + hashlib.sha256(ticket.encode()).hexdigest())
    account = accounts.get_account(data["account_id"]) if data else None
    if account is None or not account.is_active:
        return None
    return account, data
