"""The gateway request signature (connectors.signing): canonical query,
body digest, string to sign, tamper detection."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors import signing

WHEN = datetime(2026, 11, 29, 15, 0, 0, tzinfo=UTC)
BODY = b'{"name":"\xe5\xbc\xa0\xe4\xbc\x9f","id_number":"110101199003070011"}'
NONCE = "0123456789abcdef0123"


def sign(**changes) -> dict[str, str]:
    args = {"access_key": "k1", "secret": "s3cret", "method": "POST",
            "path": "/population/v1/verify", "query": "", "body": BODY, "when": WHEN,
            "nonce": NONCE}
    args.update(changes)
    return signing.sign_request(**args)


def verify(headers: dict[str, str], secret: str = "s3cret", method: str = "POST",
           path: str = "/population/v1/verify", query: str = "", body: bytes = BODY) -> bool:
    parsed = signing.parse_authorization(headers["Authorization"])
    assert parsed is not None
    return signing.verify_signature(secret, method, path, query, headers["X-Gateway-Date"],
                                    headers["X-Gateway-Nonce"], body,
                                    headers["X-Gateway-Content-SHA256"], parsed[1])


@pytest.mark.parametrize(("raw", "canonical"), [
    ("", ""),
    ("b=2&a=1", "a=1&b=2"),
    ("a=2&a=10&a=1", "a=1&a=10&a=2"),
    ("phone=%2B8613900000001", "phone=%2B8613900000001"),
    ("q=a+b&p=a%20b", "p=a%20b&q=a%20b"),
    ("empty=&x=~-._", "empty=&x=~-._"),
    ("name=%E5%BC%A0", "name=%E5%BC%A0"),
])
def test_canonical_query(raw, canonical):
    assert signing.canonical_query(raw) == canonical


def test_string_to_sign_layout():
    text = signing.string_to_sign("post", "/p", "b=2&a=1", "2026-11-29T15:00:00Z", NONCE,
                                  signing.body_digest(b"{}"))
    assert text.split("\n") == ["POST", "/p", "a=1&b=2", "2026-11-29T15:00:00Z", NONCE,
                                hashlib.sha256(b"{}").hexdigest()]


def test_signature_is_hmac_sha256_of_the_string_to_sign():
    headers = sign()
    digest = hashlib.sha256(BODY).hexdigest()
    message = "\n".join(["POST", "/population/v1/verify", "", "2026-11-29T15:00:00Z", NONCE,
                         digest])
    expected = hmac.new(b"s3cret", message.encode(), hashlib.sha256).hexdigest()
    assert headers == {
        "X-Gateway-Key": "k1",
        "X-Gateway-Date": "2026-11-29T15:00:00Z",
        "X-Gateway-Nonce": NONCE,
        "X-Gateway-Content-SHA256": digest,
        "Authorization": f"GW-HMAC-SHA256 Credential=k1,Signature={expected}",
    }


def test_empty_body_digest():
    assert signing.body_digest(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_query_order_does_not_change_the_signature():
    a = sign(method="GET", path="/sms/v1/outbox", query="phone=%2B86139&limit=5", body=b"")
    b = sign(method="GET", path="/sms/v1/outbox", query="limit=5&phone=%2B86139", body=b"")
    assert a["Authorization"] == b["Authorization"]
    assert verify(a, method="GET", path="/sms/v1/outbox", query="limit=5&phone=%2B86139",
                  body=b"")


def test_untouched_request_verifies():
    assert verify(sign())


@pytest.mark.parametrize("tamper", [
    {"secret": "other"},
    {"method": "PUT"},
    {"path": "/carrier/v1/verify"},
    {"query": "x=1"},
    {"body": BODY.replace(b"0011", b"0012")},
])
def test_tampering_is_detected(tamper):
    assert not verify(sign(), **tamper)


def test_digest_header_must_match_the_body():
    # A correct signature over a digest of another body is still refused.
    other = b"{}"
    headers = sign(body=other)
    assert not verify(headers, body=BODY)
    headers = sign()
    headers["X-Gateway-Content-SHA256"] = signing.body_digest(other)
    assert not verify(headers)


def test_date_and_nonce_are_signed():
    headers = sign()
    assert not verify({**headers, "X-Gateway-Date": "2026-11-29T15:00:01Z"})
    assert not verify({**headers, "X-Gateway-Nonce": NONCE + "x"})


def test_fresh_nonces():
    a, b = sign(nonce=None), sign(nonce=None)
    assert len(a["X-Gateway-Nonce"]) >= signing.MIN_NONCE_LENGTH
    assert a["X-Gateway-Nonce"] != b["X-Gateway-Nonce"]


def test_dates():
    local = WHEN.astimezone(timezone(timedelta(hours=8)))
    assert signing.format_date(local) == "2026-11-29T15:00:00Z"
    assert signing.parse_date("2026-11-29T15:00:00Z") == WHEN
    for bad in ("2026-11-29T15:00:00+00:00", "2026-11-29 15:00:00Z", "", "yesterday"):
        with pytest.raises(ValueError):
            signing.parse_date(bad)


@pytest.mark.parametrize("header", [
    "", "Bearer x", "GW-HMAC-SHA256 Credential=k1", "GW-HMAC-SHA256 Credential=k1,Signature=zz",
])
def test_malformed_authorization(header):
    assert signing.parse_authorization(header) is None
