"""One-time codes by SMS (sign-in, registration, phone verification).

Six digits, valid ``code_ttl`` seconds, void after ``max_attempts`` wrong
guesses, single use. Sending is limited per number and purpose (a wait that
doubles with each code of the day), per number per day and per IP per hour;
only numbers of ``allowed_country_codes`` receive codes, and global hourly
budgets (the whole provider, and each block of numbers) stop SMS pumping.
The caller sends the same answer whether or not the number has an account:
nothing here looks at accounts. Codes are kept in the store only as keyed
hashes, under the number's blind index, so the store holds neither.

A browser known to the account that holds the number (its device cookie's
nonce, passed as ``device`` by the caller, who checked whose number it is)
has its own code, wrong-guess count, resend wait and daily count for the
number, its own hourly count per IP for that number, and is outside the
budget of the number's block up to ``own_number_hourly`` codes to the
number an hour (the global budget still applies): a
stranger asking codes for the owner's number, guessing at them, or asking
codes for other numbers of the same address or block, touches none of
these, so cannot stop the owner signing in from their own browser.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from connectors.sms import SmsGateway
from idp.accounts.identifiers import check_sms_country, parse_mobile
from idp.runtime import Runtime
from idp.security import constant_time_equals, keyed_hash
from idp.sms_budget import SmsBudgetExhaustedError, spend_budget

PURPOSES = ("login", "register", "verify_phone", "reset_password", "step_up", "reauth")


class OtpThrottledError(Exception):
    """Another code cannot be sent yet; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SentCode:
    """A code went out.

    :ivar phone: the E.164 number it went to.
    :ivar message_id: the gateway's reference.
    :ivar resend_after: seconds before another code may be sent.
    """

    phone: str
    message_id: str
    resend_after: int


@dataclass(frozen=True)
class _Keys:
    code: str
    tries: str
    wait: str
    day: str


def _keys(rt: Runtime, phone: str, purpose: str, device: str | None) -> _Keys:
    index = rt.pii.blind_index("phone", phone)
    own = "" if not device else ":dev:" + hashlib.sha256(device.encode()).hexdigest()[:32]
    return _Keys(f"otp:code:{purpose}:{index}{own}", f"otp:tries:{purpose}:{index}{own}",
                 f"otp:wait:{purpose}:{index}{own}", f"otp:day:{index}{own}")


def parse_recipient(rt: Runtime, raw_phone: str) -> str:
    """The E.164 form of a number codes may be sent to.

    :raises IdentifierError: not a valid mobile number, or of a country
        outside ``sms.allowed_country_codes``.
    """
    phone = parse_mobile(raw_phone)
    check_sms_country(phone, rt.settings["sms"]["allowed_country_codes"])
    return phone


def send_code(rt: Runtime, gateway: SmsGateway, raw_phone: str, purpose: str,
              ip: str | None, device: str | None = None, *,
              own_number: bool = False) -> SentCode:
    """Generate a code for ``purpose`` and send it to the mobile ``raw_phone``.

    :param device: the device cookie nonce of the requesting browser for the
        account holding the number, or None: with it, the code, its resend
        wait, the daily count and the hourly count of the IP are this
        browser's own for the number (check the code with the same
        ``device``), and the block's budget applies only past
        ``own_number_hourly`` such codes (:func:`spend_budget`).
    :param own_number: the number is the verified number of the signed-in
        account the code is for (re-authentication, step-up), so it is
        sent whatever its country: the allow-list stops codes to numbers
        anybody types, and this one was proven by its holder (possibly
        before the list existed). Never for a number typed on a form.
    :raises IdentifierError: not a valid mobile number, or of a country
        outside ``sms.allowed_country_codes`` (nothing is counted).
    :raises OtpThrottledError: a limit is reached (nothing is sent).
    :raises SmsBudgetExhaustedError: an hourly budget is used up (nothing
        is sent, nothing is counted against the number or the IP).
    :raises connectors.sms.SmsGatewayError: the gateway did not take it (the
        limits still count, so a failing gateway cannot be used to probe).
    :raises ValueError: unknown ``purpose``.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    limits = rt.settings["sms"]
    phone = parse_mobile(raw_phone) if own_number else parse_recipient(rt, raw_phone)
    keys = _keys(rt, phone, purpose, device)
    waiting = rt.store.ttl(keys.wait)
    if waiting:
        raise OtpThrottledError(waiting)
    ip_key = None
    if ip:
        # A known browser's codes count per IP and number: everybody else
        # behind the same address (a service hall, a carrier's NAT) shares
        # the plain per-IP count, which it must not be stopped by.
        ip_key = (f"otp:ip:{ip}" if not device
                  else f"otp:ip:{ip}:{rt.pii.blind_index('phone', phone)}")
    if ip_key and rt.store.incr(ip_key, 3600) > limits["per_ip_hourly"]:
        raise OtpThrottledError(rt.store.ttl(ip_key) or 3600)
    sent_today = rt.store.incr(keys.day, 86400)
    if sent_today > limits["per_number_daily"]:
        raise OtpThrottledError(rt.store.ttl(keys.day) or 86400)
    try:
        spend_budget(rt, phone, own_code=device is not None)
    except SmsBudgetExhaustedError:
        rt.store.incr(keys.day, 86400, -1)
        if ip_key:
            rt.store.incr(ip_key, 3600, -1)
        raise
    wait = min(limits["resend_after"] * 2 ** (sent_today - 1), limits["max_resend_wait"])
    rt.store.put(keys.wait, {"n": sent_today}, wait)
    code = f"{secrets.randbelow(10**6):06d}"
    rt.store.put(keys.code, {"hash": keyed_hash(rt.token_hmac_key, code, keys.code)},
                 limits["code_ttl"])
    rt.store.delete(keys.tries)
    receipt = gateway.send(f"otp_{purpose}", phone,
                           {"code": code, "minutes": str(limits["code_ttl"] // 60)})
    return SentCode(phone=phone, message_id=receipt.message_id, resend_after=wait)


def _check(rt: Runtime, keys: _Keys, code: str) -> bool:
    entry = rt.store.get(keys.code)
    if entry is None:
        return False
    limits = rt.settings["sms"]
    if rt.store.incr(keys.tries, limits["code_ttl"]) > limits["max_attempts"]:
        rt.store.delete(keys.code)
        return False
    given = keyed_hash(rt.token_hmac_key, (code or "").strip(), keys.code)
    if not constant_time_equals(given, entry["hash"]):
        return False
    # take(): of two concurrent correct submissions only one succeeds.
    return rt.store.take(keys.code) is not None


def check_code(rt: Runtime, raw_phone: str, purpose: str, code: str,
               device: str | None = None) -> str | None:
    """Check a code typed for ``raw_phone``; a correct code is used up.

    :param device: as given to :func:`send_code`: the browser's own code is
        checked; when it has none (it asked for the code before it was
        known), the number's other code is.
    :returns: the E.164 number when the code is right, else None (wrong,
        expired, already used, or void after too many wrong guesses).
    """
    try:
        phone = parse_mobile(raw_phone)
    except ValueError:
        return None
    if device:
        own = _keys(rt, phone, purpose, device)
        if rt.store.get(own.code) is not None:
            return phone if _check(rt, own, code) else None
    return phone if _check(rt, _keys(rt, phone, purpose, None), code) else None



@dataclass(frozen=True)
class ProvenCode:
    """A right code that is not used up yet (:func:`prove_code`); the caller
    checks whatever else it must, then spends it with :func:`use_code`, so a
    refusal for another reason (a new password the policy refuses) leaves
    the code for the next attempt.

    :ivar phone: the E.164 number the code was sent to.
    :ivar key: the store key of the code.
    :ivar digest: the keyed hash of the code as stored.
    """

    phone: str
    key: str
    digest: str


def prove_code(rt: Runtime, raw_phone: str, purpose: str, code: str,
               device: str | None = None) -> ProvenCode | None:
    """Check a code typed for ``raw_phone`` as :func:`check_code` does (the
    browser's own code first; a wrong code counts against
    ``sms.max_attempts``), without using it up. A right code gives back the
    attempt it counted: it is no guess, and refusals for other reasons must
    not void it.

    :returns: the proven code, or None (wrong, expired, already used, or
        void after too many wrong guesses).
    """
    try:
        phone = parse_mobile(raw_phone)
    except ValueError:
        return None
    keys = _keys(rt, phone, purpose, None)
    if device:
        own = _keys(rt, phone, purpose, device)
        if rt.store.get(own.code) is not None:
            keys = own
    entry = rt.store.get(keys.code)
    if entry is None:
        return None
    limits = rt.settings["sms"]
    if rt.store.incr(keys.tries, limits["code_ttl"]) > limits["max_attempts"]:
        rt.store.delete(keys.code)
        return None
    given = keyed_hash(rt.token_hmac_key, (code or "").strip(), keys.code)
    if not constant_time_equals(given, entry["hash"]):
        return None
    rt.store.incr(keys.tries, limits["code_ttl"], -1)
    return ProvenCode(phone, keys.code, entry["hash"])


def use_code(rt: Runtime, proven: ProvenCode) -> bool:
    """Use up a code :func:`prove_code` proved. Of two concurrent uses only
    one succeeds (``take``).

    :returns: False when it was used meanwhile, or replaced by a newer code
        (which stays, for whoever holds it).
    """
    remaining = rt.store.ttl(proven.key)
    entry = rt.store.take(proven.key)
    if entry is None:
        return False
    if not constant_time_equals(entry["hash"], proven.digest):
        rt.store.put(proven.key, entry, max(remaining or 1, 1))
        return False
    return True
