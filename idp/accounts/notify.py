"""Telling a person by text message that something changed on their account
(an authenticator added, the password or phone changed, an ID number taken
back by its holder...). Best effort: a message that cannot be sent is logged
and never undoes or blocks the change it reports.

Notices are text messages like the codes, so they are limited like them
(docs/limits.md): each counts against the provider's global hourly budget
(``sms.global_hourly_budget``; nothing is sent once it is used up), and one
number gets at most one notice of a kind (template) per
``sms.notice_interval`` seconds, however often the action that causes it is
repeated (pressing "new recovery codes" again and again tells the phone
once). They go only to numbers an account verified, never to one typed on a
form, so the budget of the number's block and the country allow-list, which
stop codes pumped to numbers anybody types, do not apply.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping

from connectors.registries import RegistryUnavailableError
from connectors.sms import SmsGatewayError
from idp.accounts import service as accounts
from idp.accounts.models import Account
from idp.runtime import Runtime
from idp.sms_budget import SmsBudgetExhaustedError, alert_operators, spend_budget
from idp.unit_of_work import after_commit

log = logging.getLogger(__name__)


def notify_phone(rt: Runtime, phone: str, template: str,
                 params: Mapping[str, str] | None = None) -> bool:
    """Send the notice ``template`` (with ``params``) to ``phone`` (E.164),
    a number an account verified, unless the same notice went to it less
    than ``sms.notice_interval`` seconds ago or the global hourly budget is
    used up (the first refusal of an hour alerts the operators, as for
    codes: ``sms.budget_exhausted``).

    :returns: True when the gateway took the message; False when it was not
        sent (no gateway configured, the same notice shortly before, the
        budget used up, or the gateway failed: logged, never raised).
    """
    if rt.registries.sms is None:
        return False
    recent = f"sms:notice:{template}:{rt.pii.blind_index('phone', phone)}"
    if not rt.store.add(recent, {}, rt.settings["sms"]["notice_interval"]):
        log.info("the %s notice was sent to this number shortly before; not sent again",
                 template)
        return False
    try:
        spend_budget(rt, phone, block=False)
        rt.registries.sms.send(template, phone, dict(params or {}))
    except SmsBudgetExhaustedError as exc:
        rt.store.delete(recent)
        log.warning("the %s notice was not sent: the SMS budget is used up", template)
        if exc.first:
            alert_operators(rt, exc, None)
        return False
    except (SmsGatewayError, RegistryUnavailableError):
        rt.store.delete(recent)
        log.warning("could not send the %s notice", template)
        return False
    return True


def notify_account(rt: Runtime, account: Account, template: str,
                   params: Mapping[str, str] | None = None) -> bool:
    """Send the notice ``template`` to the account's *verified* mobile number,
    if it has one (an unproven number may be anybody's), within the limits
    of :func:`notify_phone`.

    :returns: whether a message went out (see :func:`notify_phone`).
    """
    if not account.phone_number_verified:
        return False
    phone = accounts.phone_number(rt, account)
    return notify_phone(rt, phone, template, params) if phone else False


def notify_after_commit(rt: Runtime, account: Account, template: str,
                        params: Mapping[str, str] | None = None) -> None:
    """Tell the account's verified mobile number about a change, as
    :func:`notify_account`, once the unit of work that makes the change has
    committed (:func:`idp.unit_of_work.after_commit`): a change rolled back
    is never reported. The number is the one verified now, before the change
    is committed (a notice about a changed phone goes to the old one)."""
    if not account.phone_number_verified:
        return
    phone = accounts.phone_number(rt, account)
    if phone:
        after_commit(functools.partial(notify_phone, rt, phone, template, params))
