"""The provider's hourly budgets of text messages, which stop SMS pumping
(docs/limits.md): one for the whole provider and one per block of numbers.
Every message counts here, the codes of the login methods
(:mod:`idp.authn.otp`) and the notices to verified numbers
(:mod:`idp.accounts.notify`), so it sits below both."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import phonenumbers

from idp.audit.service import record_deferred
from idp.runtime import Runtime
from idp.security import keyed_hash

log = logging.getLogger(__name__)

#: The window of the global budgets: a clock hour, in seconds.
BUDGET_WINDOW = 3600


class SmsBudgetExhaustedError(Exception):
    """An hourly budget of the provider's text messages is used up: nothing
    more is sent until the hour ends.

    :ivar budget: ``global`` (the whole provider) or ``prefix`` (one block
        of numbers).
    :ivar limit: the budget, messages per hour.
    :ivar window_start: Unix seconds when the hour began.
    :ivar window_end: Unix seconds when it ends (sending resumes).
    :ivar block: the number block of a ``prefix`` budget, masked
        (``+86 1390000****``), else None.
    :ivar first: True for the first refusal of this budget in this hour,
        so the operators are alerted once per window.
    """

    def __init__(self, budget: str, limit: int, window_start: int, block: str | None,
                 first: bool) -> None:
        super().__init__(f"SMS {budget} budget of {limit} per hour exhausted")
        self.budget = budget
        self.limit = limit
        self.window_start = window_start
        self.window_end = window_start + BUDGET_WINDOW
        self.block = block
        self.first = first

    @property
    def window(self) -> str:
        """The hour as an ISO 8601 interval in UTC."""
        def iso(ts: int) -> str:
            return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{iso(self.window_start)}/{iso(self.window_end)}"


def _block(phone: str, digits: int) -> tuple[str, str]:
    """The block of numbers ``phone`` belongs to: the country code and the
    first ``digits`` digits of the national number (always leaving four
    out, so a block never names one number), as ``(key, masked)``."""
    number = phonenumbers.parse(phone)
    national = str(number.national_number)
    head = national[:max(1, min(digits, len(national) - 4))]
    hidden = "*" * (len(national) - len(head))
    return f"+{number.country_code}{head}", f"+{number.country_code} {head}{hidden}"


def spend_budget(rt: Runtime, phone: str, *, block: bool = True,
                 own_code: bool = False) -> None:
    """Count one message to ``phone`` against the global budget of this
    hour and, with ``block``, against the budget of the number's block;
    refuse (counting nothing) when one is used up. Every text message the
    provider sends counts here: codes and notices
    (:mod:`idp.accounts.notify`).

    :param block: False for a notice to a number an account verified: it
        cannot be aimed at other numbers, and strangers spending the
        block's budget must not silence it.
    :param own_code: a code a browser known to the number's account asks
        for it: strangers spending the block's budget must not stop the
        owner, so the first ``own_number_hourly`` such codes to the number
        in the hour are outside it; more count against it like anyone's
        (known browsers are made by signing in, so whoever holds numbers
        of a block cannot pump past its budget with them).
    :raises SmsBudgetExhaustedError: a budget is used up.
    """
    limits = rt.settings["sms"]
    now = int(time.time())
    start = now - now % BUDGET_WINDOW
    ttl = start + BUDGET_WINDOW - now
    global_key = f"sms:budget:global:{start}"
    if rt.store.incr(global_key, ttl) > limits["global_hourly_budget"]:
        rt.store.incr(global_key, ttl, -1)
        first = rt.store.add(f"sms:alert:global:{start}", {}, ttl)
        raise SmsBudgetExhaustedError("global", limits["global_hourly_budget"], start, None,
                                      first)
    if not block:
        return
    if own_code:
        own_key = f"sms:budget:own:{start}:{rt.pii.blind_index('phone', phone)}"
        if rt.store.incr(own_key, ttl) <= limits["own_number_hourly"]:
            return
        rt.store.incr(own_key, ttl, -1)
    block_key, masked = _block(phone, limits["prefix_digits"])
    block_id = keyed_hash(rt.token_hmac_key, block_key, "sms_block")[:32]
    counter = f"sms:budget:block:{start}:{block_id}"
    if rt.store.incr(counter, ttl) > limits["prefix_hourly_budget"]:
        rt.store.incr(counter, ttl, -1)
        rt.store.incr(global_key, ttl, -1)
        first = rt.store.add(f"sms:alert:block:{start}:{block_id}", {}, ttl)
        raise SmsBudgetExhaustedError("prefix", limits["prefix_hourly_budget"], start, masked,
                                      first)


def alert_operators(rt: Runtime, exc: SmsBudgetExhaustedError, ip: str | None) -> None:
    """The operators' alert, once per budget and window (call it when
    ``exc.first``): a warning in the log and ``sms.budget_exhausted`` in
    the audit trail, for a code (:mod:`idp.authn.otp`) or a notice
    (:mod:`idp.accounts.notify`).

    :param ip: the client IP of the request that was refused, if any.
    """
    where = f" for numbers {exc.block}" if exc.block else ""
    log.warning("SMS %s budget of %d messages per hour reached%s: nothing more is sent "
                "in %s", exc.budget, exc.limit, where, exc.window)
    detail = {"block": exc.block} if exc.block else {}
    record_deferred(rt.audit, "sms.budget_exhausted", "failure", ip=ip, budget=exc.budget,
                    limit=exc.limit, window=exc.window, **detail)
