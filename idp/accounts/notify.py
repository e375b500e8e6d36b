"""Telling a person by text message that something changed on their account
(an authenticator added, the password or phone changed, an ID number taken
back by its holder...). Best effort: a message that cannot be sent is logged
and never undoes or blocks the change it reports."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from connectors.registries import RegistryUnavailableError
from connectors.sms import SmsGatewayError
from idp.accounts import service as accounts
from idp.accounts.models import Account
from idp.runtime import Runtime

log = logging.getLogger(__name__)


def notify_phone(rt: Runtime, phone: str, template: str,
                 params: Mapping[str, str] | None = None) -> bool:
    """Send the notice ``template`` (with ``params``) to ``phone`` (E.164).

    :returns: True when the gateway took the message; False when no gateway
        is configured or it failed (logged, never raised).
    """
    if rt.gateway is None:
        return False
    try:
        rt.gateway.send(template, phone, dict(params or {}))
    except (SmsGatewayError, RegistryUnavailableError):
        log.warning("could not send the %s notice", template)
        return False
    return True


def notify_account(rt: Runtime, account: Account, template: str,
                   params: Mapping[str, str] | None = None) -> bool:
    """Send the notice ``template`` to the account's *verified* mobile number,
    if it has one (an unproven number may be anybody's).

    :returns: whether a message went out (see :func:`notify_phone`).
    """
    if not account.phone_number_verified:
        return False
    phone = accounts.phone_number(rt, account)
    return notify_phone(rt, phone, template, params) if phone else False
