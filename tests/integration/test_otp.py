"""SMS one-time codes: format, lifetime, attempts, single use, send limits,
and abuse under 200 rapid requests."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from connectors.sms import SmsReceipt
from idp.authn.otp import OtpThrottledError, check_code, send_code


class RecordingGateway:
    """Test double of the SMS gateway: keeps what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []

    def send(self, template, phone, params):
        self.sent.append((template, phone, dict(params)))
        return SmsReceipt(message_id=uuid.uuid4().hex)


def _phone() -> str:
    return f"139{uuid.uuid4().int % 10**8:08d}"


@pytest.fixture
def otp(make_provider):
    provider = make_provider(sms={"resend_after": 1, "max_resend_wait": 4})
    with provider.app.app_context():
        yield provider.runtime, RecordingGateway()


def test_code_is_six_digits_single_use(otp):
    rt, gateway = otp
    phone = _phone()
    sent = send_code(rt, gateway, phone, "login", "10.1.0.1")
    template, to, params = gateway.sent[-1]
    assert template == "otp_login" and to == sent.phone == "+86" + phone
    assert re.fullmatch(r"\d{6}", params["code"])
    assert check_code(rt, phone, "register", params["code"]) is None  # other purpose
    assert check_code(rt, phone, "login", params["code"]) == "+86" + phone
    assert check_code(rt, phone, "login", params["code"]) is None  # used up


def test_five_wrong_guesses_void_the_code(otp):
    rt, gateway = otp
    phone = _phone()
    send_code(rt, gateway, phone, "login", "10.1.0.2")
    code = gateway.sent[-1][2]["code"]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        assert check_code(rt, phone, "login", wrong) is None
    assert check_code(rt, phone, "login", code) is None


def test_code_expires(make_provider):
    provider = make_provider(sms={"code_ttl": 1, "resend_after": 1})
    gateway = RecordingGateway()
    with provider.app.app_context():
        phone = _phone()
        send_code(provider.runtime, gateway, phone, "login", None)
        time.sleep(2.1)
        assert check_code(provider.runtime, phone, "login", gateway.sent[-1][2]["code"]) is None


def test_resend_wait_grows(otp):
    rt, gateway = otp
    phone = _phone()
    first = send_code(rt, gateway, phone, "login", None)
    with pytest.raises(OtpThrottledError):
        send_code(rt, gateway, phone, "login", None)
    time.sleep(first.resend_after + 0.1)
    second = send_code(rt, gateway, phone, "login", None)
    assert second.resend_after == 2 * first.resend_after


def test_not_a_mobile_number(otp):
    from idp.accounts.identifiers import IdentifierError

    rt, gateway = otp
    with pytest.raises(IdentifierError):
        send_code(rt, gateway, "010-12345678", "login", None)
    assert gateway.sent == []


def test_store_holds_neither_code_nor_number(otp):
    rt, gateway = otp
    phone = _phone()
    send_code(rt, gateway, phone, "login", None)
    key = "otp:code:login:" + rt.pii.blind_index("phone", "+86" + phone)
    entry = rt.store.get(key)
    assert entry is not None and gateway.sent[-1][2]["code"] not in str(entry)
    assert phone not in key


def test_abuse_limits_hold_under_200_rapid_requests(make_provider):
    """Issue 3 done-criterion: 200 rapid requests from one IP to many numbers
    and to one number send no more than the limits allow."""
    provider = make_provider(sms={"per_ip_hourly": 30, "per_number_daily": 10})
    gateway = RecordingGateway()
    refused = 0
    with provider.app.app_context():
        for i in range(200):
            target = _phone() if i % 2 else "13900000009"
            try:
                send_code(provider.runtime, gateway, target, "login", "10.9.9.9")
            except OtpThrottledError:
                refused += 1
    assert len(gateway.sent) <= 30
    assert sum(1 for _, to, _ in gateway.sent if to == "+8613900000009") == 1
    assert refused == 200 - len(gateway.sent)
