"""Encryption at rest and blind indexes of personal identifiers."""

from __future__ import annotations

import os

import pytest

from idp.accounts.pii import PiiCipher, PiiError

K0, K1, INDEX = os.urandom(32), os.urandom(32), os.urandom(32)


@pytest.fixture(params=[("AES-256-GCM", "HMAC-SHA256"), ("SM4-GCM", "HMAC-SM3")])
def cipher(request):
    algorithm, index = request.param
    return PiiCipher({"k0": K0}, "k0", algorithm, INDEX, index)


def test_round_trip_and_no_plaintext(cipher):
    stored = cipher.encrypt("resident_id", "990101200001010014")
    assert "990101200001010014" not in stored and stored.startswith("v1.k0.")
    assert cipher.decrypt("resident_id", stored) == "990101200001010014"
    assert stored != cipher.encrypt("resident_id", "990101200001010014")  # fresh nonce


def test_value_is_bound_to_its_kind(cipher):
    stored = cipher.encrypt("phone", "+8613900000001")
    with pytest.raises(PiiError):
        cipher.decrypt("resident_id", stored)


def test_tampering_is_detected(cipher):
    stored = cipher.encrypt("phone", "+8613900000001")
    body = stored.rsplit(".", 1)
    flipped = body[0] + "." + ("A" if body[1][0] != "A" else "B") + body[1][1:]
    for bad in (flipped, "v1.k0", "garbage", "v2" + stored[2:]):
        with pytest.raises(PiiError):
            cipher.decrypt("phone", bad)


def test_key_rotation():
    old = PiiCipher({"k0": K0}, "k0", "AES-256-GCM", INDEX, "HMAC-SHA256")
    stored = old.encrypt("phone", "+8613900000001")
    new = PiiCipher({"k0": K0, "k1": K1}, "k1", "SM4-GCM", INDEX, "HMAC-SHA256")
    assert new.decrypt("phone", stored) == "+8613900000001"
    assert new.needs_reencryption(stored)
    assert not new.needs_reencryption(new.encrypt("phone", "+8613900000001"))
    retired = PiiCipher({"k1": K1}, "k1", "SM4-GCM", INDEX, "HMAC-SHA256")
    with pytest.raises(PiiError, match="k0"):
        retired.decrypt("phone", stored)


def test_blind_index(cipher):
    a = cipher.blind_index("resident_id", "990101200001010014")
    assert a == cipher.blind_index("resident_id", "990101200001010014")
    assert a != cipher.blind_index("resident_id", "990101200001010022")
    assert a != cipher.blind_index("phone", "990101200001010014")
    other = PiiCipher({"k0": K0}, "k0", "AES-256-GCM", os.urandom(32), "HMAC-SHA256")
    assert a != other.blind_index("resident_id", "990101200001010014")
    assert len(a) == 64


def test_configuration_errors():
    for args in (({"k0": K0}, "k1", "AES-256-GCM", INDEX, "HMAC-SHA256"),
                 ({"k0": K0}, "k0", "DES", INDEX, "HMAC-SHA256"),
                 ({"k0": K0[:8]}, "k0", "AES-256-GCM", INDEX, "HMAC-SHA256"),
                 ({"k0": K0}, "k0", "AES-256-GCM", INDEX[:4], "HMAC-SHA256")):
        with pytest.raises(ValueError):
            PiiCipher(*args)
