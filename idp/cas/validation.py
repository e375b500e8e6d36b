"""Validating CAS tickets and granting proxy tickets (CAS 3.0 §2.4 to
§2.7): the rules, below HTTP. A ticket is used up by its first validation,
whatever the outcome (§3.1.1), and a failure revokes nothing else: the
session, its other tickets and the OpenID Connect grants go on."""

from __future__ import annotations

from dataclasses import dataclass

from idp import sessions
from idp.accounts.models import Account
from idp.accounts.service import get_account
from idp.audit.service import record_deferred
from idp.authorizations.consents import has_consent
from idp.cas import responses, tickets
from idp.cas.services import find_service, registration_for
from idp.cas.tickets import Ticket
from idp.clients.cache import ClientInfo
from idp.oidc.authorize import SENSITIVE_SCOPES
from idp.oidc.stepup import evaluate
from idp.outbound import OutboundError, call
from idp.runtime import Runtime
from idp.timeutil import epoch

#: Seconds a proxy callback has to answer (§2.5.4), in all.
PROXY_CALLBACK_TIMEOUT = 5


class CasError(Exception):
    """A validation or proxy request is refused.

    :ivar code: the CAS error code (:mod:`idp.cas.responses`).
    :ivar description: what is wrong, for the answer.
    """

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True)
class Validated:
    """A ticket that passed.

    :ivar ticket: what it stood for.
    :ivar client: the service it was issued to.
    :ivar account: the user's account.
    :ivar iou: the proxy-granting ticket IOU, when a PGT was delivered.
    """

    ticket: Ticket
    client: ClientInfo
    account: Account
    iou: str | None


def validate(rt: Runtime, value: str | None, service: str | None, *, renew: bool,
             pgt_url: str | None, proxies_allowed: bool, ip: str | None) -> Validated:
    """Validate the ticket ``value`` for ``service`` (``/serviceValidate``
    with ``proxies_allowed`` False: service tickets only, §2.5;
    ``/proxyValidate`` with it True: proxy tickets too, §2.6). A service
    ticket joins the SSO session's relying parties, so that CAS single
    logout names it. With ``pgt_url``, a proxy-granting ticket is sent
    there when it is one of the service's registered proxy callbacks and it
    answers 200 (§2.5.4); otherwise the answer has no IOU.

    :raises CasError: ``INVALID_REQUEST`` (a parameter missing),
        ``INVALID_TICKET_SPEC`` (a proxy ticket at ``/serviceValidate``),
        ``INVALID_TICKET`` (unknown, used, expired, not from a new login
        under ``renew``, or an account that may not log in now),
        ``INVALID_SERVICE`` (another service than the ticket's).
    """
    if not value or not service:
        raise CasError(responses.INVALID_REQUEST, "Both service and ticket are required.")
    kind = value.split("-", 1)[0]
    ticket = tickets.take(rt, value)
    if kind == "PT" and not proxies_allowed:
        _refused(rt, ticket, responses.INVALID_TICKET_SPEC, ip)
        raise CasError(responses.INVALID_TICKET_SPEC,
                       "A proxy ticket is validated at /proxyValidate.")
    if ticket is None or ticket.kind != kind or kind not in ("ST", "PT"):
        _refused(rt, None, responses.INVALID_TICKET, ip)
        raise CasError(responses.INVALID_TICKET, "The ticket is not recognized.")
    if ticket.service != service:
        _refused(rt, ticket, responses.INVALID_SERVICE, ip)
        raise CasError(responses.INVALID_SERVICE,
                       "The ticket was issued to another service.")
    client = find_service(rt, service)
    if client is None or client.client_id != ticket.client_id:
        _refused(rt, ticket, responses.INVALID_SERVICE, ip)
        raise CasError(responses.INVALID_SERVICE, "The service is not registered.")
    if renew and not ticket.new_login:
        _refused(rt, ticket, responses.INVALID_TICKET, ip)
        raise CasError(responses.INVALID_TICKET,
                       "The ticket did not come from a new login (renew).")
    account = get_account(ticket.account_id)
    if account is None or not account.may_receive_tokens:
        _refused(rt, ticket, responses.INVALID_TICKET, ip)
        raise CasError(responses.INVALID_TICKET, "The ticket is not recognized.")
    # The SSO session behind the ticket must still be live (a logout within
    # the ticket's seconds ends it); a service ticket joins it, to be named
    # at its single logout, sent to the service's registration.
    live = (sessions.record_ticket(rt.store, account.id, ticket.sid, client.client_id,
                                   registration_for(client, service), value)
            if kind == "ST" else _session_remaining(rt, ticket) > 0)
    if not live:
        _refused(rt, ticket, responses.INVALID_TICKET, ip)
        raise CasError(responses.INVALID_TICKET, "The session of the ticket has ended.")
    iou = _grant_proxy(rt, client, ticket, pgt_url) if pgt_url else None
    record_deferred(rt.audit, "cas.ticket_validated", account_id=account.id,
                    client_id=client.client_id, ip=ip, kind=kind, sid=ticket.sid,
                    proxied=bool(ticket.proxies), pgt=iou is not None)
    return Validated(ticket, client, account, iou)


def _refused(rt: Runtime, ticket: Ticket | None, code: str, ip: str | None) -> None:
    record_deferred(rt.audit, "cas.ticket_refused", "failure",
                    account_id=ticket.account_id if ticket else None,
                    client_id=ticket.client_id if ticket else None, ip=ip, code=code)


def _session_remaining(rt: Runtime, ticket: Ticket) -> int:
    """Seconds the SSO session of ``ticket`` still lives; 0 when it ended."""
    session = sessions.find_session(rt.store, ticket.account_id, ticket.sid)
    return session.ends_at() - epoch() if session is not None else 0


def _grant_proxy(rt: Runtime, client: ClientInfo, ticket: Ticket, pgt_url: str) -> str | None:
    """Send a proxy-granting ticket to ``pgt_url`` (§2.5.4) and return its
    IOU; None when the URL is not one of the service's registered
    callbacks, the session has ended, or the callback did not answer 200
    (the ticket is then withdrawn)."""
    if pgt_url not in client.cas_proxy_callbacks:
        return None
    lifetime = min(_session_remaining(rt, ticket), tickets.PROXY_GRANTING_TICKET_TTL)
    if lifetime <= 0:
        return None
    granting = Ticket(kind="PGT", client_id=client.client_id, service="",
                      account_id=ticket.account_id, sid=ticket.sid, auth_time=ticket.auth_time,
                      amr=ticket.amr, acr=ticket.acr, new_login=False,
                      proxies=[pgt_url, *ticket.proxies])
    value = tickets.issue(rt, granting, lifetime)
    iou = tickets.iou()
    try:
        delivered = call("GET", pgt_url, params={"pgtId": value, "pgtIou": iou},
                         timeout=PROXY_CALLBACK_TIMEOUT) == 200
    except OutboundError:
        delivered = False
    if not delivered:
        tickets.take(rt, value)
        return None
    return iou


def _target_policy(rt: Runtime, target: ClientInfo, account: Account,
                   amr: list[str]) -> str:
    """What the target of a proxy ticket demands of a login to it, as
    ``/cas/login`` would (:func:`idp.oidc.authorize.decide`), without a
    page to ask on: the user's consent to it (unless trusted) and its
    minimum level, met by the session's own login.

    :returns: the ``acr`` to report to the target.
    :raises CasError: ``UNAUTHORIZED_SERVICE`` when one is not met.
    """
    scope = target.scope
    asks = not target.trusted or bool(SENSITIVE_SCOPES & set(scope.split()))
    if asks and not has_consent(account.id, target.client_id, scope):
        raise CasError(responses.UNAUTHORIZED_SERVICE,
                       "The user has not allowed the target service.")
    state = evaluate(rt, account, amr, rt.acr.required_level(None, None, target.min_acr))
    if not state.met:
        raise CasError(responses.UNAUTHORIZED_SERVICE,
                       "The session's login is below the target service's level.")
    return rt.acr.reported(state.achieved, None)


def proxy_ticket(rt: Runtime, pgt: str | None, target_service: str | None,
                 ip: str | None) -> str:
    """A proxy ticket for ``target_service`` from the proxy-granting ticket
    ``pgt`` (``/proxy``, §2.7), while its SSO session lives.

    :raises CasError: ``INVALID_REQUEST`` (a parameter missing),
        ``INVALID_TICKET`` (an unknown or expired PGT, its session ended,
        an account that may not log in now, or the service it was given to
        removed, its callback taken off its registration, or no longer
        allowed by the user), ``UNAUTHORIZED_SERVICE`` (the
        target is not a registered service, or demands what the session
        does not give: :func:`_target_policy`).
    """
    if not pgt or not target_service:
        raise CasError(responses.INVALID_REQUEST, "Both pgt and targetService are required.")
    granting = tickets.read(rt, pgt) if pgt.startswith("PGT-") else None
    if granting is None or granting.kind != "PGT" or _session_remaining(rt, granting) <= 0:
        raise CasError(responses.INVALID_TICKET, "The proxy-granting ticket is not recognized.")
    target = find_service(rt, target_service)
    if target is None:
        raise CasError(responses.UNAUTHORIZED_SERVICE,
                       "The target service is not a registered CAS service.")
    account = get_account(granting.account_id)
    proxier = rt.clients.get(granting.client_id)
    # The service holding the ticket must still be what it was given to: a
    # registered CAS service with that callback, which the user allows.
    if (account is None or not account.may_receive_tokens or proxier is None
            or granting.proxies[0] not in proxier.cas_proxy_callbacks):
        raise CasError(responses.INVALID_TICKET, "The proxy-granting ticket is not recognized.")
    try:
        _target_policy(rt, proxier, account, granting.amr)
    except CasError:
        raise CasError(responses.INVALID_TICKET,
                       "The proxy-granting ticket is not recognized.") from None
    acr = _target_policy(rt, target, account, granting.amr)
    value = tickets.issue(rt, Ticket(
        kind="PT", client_id=target.client_id, service=target_service,
        account_id=granting.account_id, sid=granting.sid, auth_time=granting.auth_time,
        amr=granting.amr, acr=acr, new_login=False, proxies=granting.proxies),
        tickets.SERVICE_TICKET_TTL)
    record_deferred(rt.audit, "cas.proxy_ticket", account_id=granting.account_id,
                    client_id=target.client_id, ip=ip, proxied_by=granting.client_id)
    return value
