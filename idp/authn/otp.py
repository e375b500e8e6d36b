"""One-time codes by SMS (sign-in, registration, phone verification).

Six digits, valid ``code_ttl`` seconds, void after ``max_attempts`` wrong
guesses, single use. Sending is limited per number and purpose (a wait that
doubles with each code of the day), per number per day and per IP per hour.
The caller sends the same answer whether or not the number has an account:
nothing here looks at accounts. Codes are kept in the store only as keyed
hashes, under the number's blind index, so the store holds neither.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from connectors.sms import SmsGateway
from idp.accounts.identifiers import parse_mobile
from idp.runtime import Runtime
from idp.security import constant_time_equals, keyed_hash

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


def _keys(rt: Runtime, phone: str, purpose: str) -> tuple[str, str, str, str]:
    index = rt.pii.blind_index("phone", phone)
    return (f"otp:code:{purpose}:{index}", f"otp:tries:{purpose}:{index}",
            f"otp:wait:{purpose}:{index}", f"otp:day:{index}")


def send_code(rt: Runtime, gateway: SmsGateway, raw_phone: str, purpose: str,
              ip: str | None) -> SentCode:
    """Generate a code for ``purpose`` and send it to the mobile ``raw_phone``.

    :raises IdentifierError: not a valid mobile number.
    :raises OtpThrottledError: a limit is reached (nothing is sent).
    :raises connectors.sms.SmsGatewayError: the gateway did not take it (the
        limits still count, so a failing gateway cannot be used to probe).
    :raises ValueError: unknown ``purpose``.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    limits = rt.settings["sms"]
    phone = parse_mobile(raw_phone)
    code_key, tries_key, wait_key, day_key = _keys(rt, phone, purpose)
    waiting = rt.store.ttl(wait_key)
    if waiting:
        raise OtpThrottledError(waiting)
    if ip and rt.store.incr(f"otp:ip:{ip}", 3600) > limits["per_ip_hourly"]:
        raise OtpThrottledError(rt.store.ttl(f"otp:ip:{ip}") or 3600)
    sent_today = rt.store.incr(day_key, 86400)
    if sent_today > limits["per_number_daily"]:
        raise OtpThrottledError(rt.store.ttl(day_key) or 86400)
    wait = min(limits["resend_after"] * 2 ** (sent_today - 1), limits["max_resend_wait"])
    rt.store.put(wait_key, {"n": sent_today}, wait)
    code = f"{secrets.randbelow(10**6):06d}"
    rt.store.put(code_key, {"hash": keyed_hash(rt.token_hmac_key, code, code_key)},
                 limits["code_ttl"])
    rt.store.delete(tries_key)
    receipt = gateway.send(f"otp_{purpose}", phone,
                           {"code": code, "minutes": str(limits["code_ttl"] // 60)})
    return SentCode(phone=phone, message_id=receipt.message_id, resend_after=wait)


def check_code(rt: Runtime, raw_phone: str, purpose: str, code: str) -> str | None:
    """Check a code typed for ``raw_phone``; a correct code is used up.

    :returns: the E.164 number when the code is right, else None (wrong,
        expired, already used, or void after too many wrong guesses).
    """
    try:
        phone = parse_mobile(raw_phone)
    except ValueError:
        return None
    code_key, tries_key, _wait, _day = _keys(rt, phone, purpose)
    entry = rt.store.get(code_key)
    if entry is None:
        return None
    limits = rt.settings["sms"]
    if rt.store.incr(tries_key, limits["code_ttl"]) > limits["max_attempts"]:
        rt.store.delete(code_key)
        return None
    expected = entry["hash"]
    given = keyed_hash(rt.token_hmac_key, (code or "").strip(), code_key)
    if not constant_time_equals(given, expected):
        return None
    # take(): of two concurrent correct submissions only one succeeds.
    return phone if rt.store.take(code_key) is not None else None
