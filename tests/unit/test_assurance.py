"""Assurance levels and acr rules, without HTTP or a database."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from idp.accounts.models import VerificationEvidence
from idp.accounts.verification import level_from
from idp.config import ConfigError, load_settings
from idp.oidc.acr import ACR_NONE, AcrPolicy, combine_amr
from idp.timeutil import utcnow

POLICY = AcrPolicy(("L1", "L2", "L3", "L4"), single_factor=2, multi_factor=3, kiosk=2)


def _evidence(method: str, level: int, *, days: int = 30, revoked: bool = False):
    now = utcnow()
    return VerificationEvidence(method=method, level=level, verified_at=now,
                                expires_at=now + timedelta(days=days),
                                revoked_at=now if revoked else None)


def _account(phone_verified: bool = True):
    return SimpleNamespace(phone_number_verified=phone_verified)


def test_levels_from_evidence():
    account = _account()
    population = _evidence("population_registry", 2)
    carrier = _evidence("carrier_three_element", 3)
    assert level_from(_account(False), []) == 0
    assert level_from(account, []) == 1
    assert level_from(account, [population]) == 2
    assert level_from(account, [population, carrier]) == 3
    assert level_from(account, [population, _evidence("face_comparison", 3)]) == 3
    # A strong proof without the registry match does not make level 3 (or 2).
    assert level_from(account, [carrier]) == 1
    # Issue 7: the social security card's number is printed on it
    # (knowledge), so the card check never makes level 3, whatever level an
    # older record of it says.
    assert level_from(account, [population, _evidence("social_security_card", 3)]) == 2
    assert level_from(account, [population, _evidence("card_read", 2),
                                _evidence("social_security_card", 2)]) == 2
    assert level_from(account, [_evidence("in_person", 4)]) == 4


def test_expired_revoked_and_failed_evidence_do_not_count():
    account = _account()
    assert level_from(account, [_evidence("population_registry", 2, days=-1)]) == 1
    assert level_from(account, [_evidence("population_registry", 2, revoked=True)]) == 1
    assert level_from(account, [_evidence("population_registry", 0)]) == 1
    # Level 3 falls to 1 with its registry match gone: the chain is broken.
    assert level_from(account, [_evidence("population_registry", 2, days=-1),
                                _evidence("face_comparison", 3)]) == 1


def test_acr_values_and_caps():
    assert POLICY.acr_of(0) == ACR_NONE and POLICY.acr_of(3) == "L3"
    assert POLICY.level_of("L2") == 2 and POLICY.level_of("0") == 0
    assert POLICY.level_of("gold") is None
    assert POLICY.method_cap(["pwd"]) == 2 and POLICY.method_cap(["sms"]) == 2
    assert POLICY.method_cap(["pwd", "otp", "mfa"]) == 3
    assert POLICY.method_cap(["hwk"]) == 2
    # The account's level capped by the methods, never raised by them.
    assert POLICY.achieved(3, ["pwd"]) == 2
    assert POLICY.achieved(1, ["pwd", "otp", "mfa"]) == 1
    assert POLICY.achieved(4, ["pwd", "sms", "mfa"]) == 3


def test_required_level_takes_the_lowest_acceptable_and_the_client_floor():
    assert POLICY.required_level(None, None, None) == 0
    assert POLICY.required_level("L3", None, None) == 3
    # Any listed value is acceptable, so the lowest known one counts.
    assert POLICY.required_level("L4 L3 unknown", None, None) == 3
    assert POLICY.required_level("unknown", None, None) == 0
    assert POLICY.required_level("L1", ["L3"], None) == 3
    assert POLICY.required_level("L1", None, "L2") == 2


def test_reported_acr_matches_an_essential_request():
    # OIDC Core §5.5.1.1: an essential request's value must be one requested.
    assert POLICY.reported(3, ["L2"]) == "L2"
    assert POLICY.reported(3, ["L2", "L3"]) == "L3"
    assert POLICY.reported(3, None) == "L3"
    assert POLICY.reported(0, None) == ACR_NONE


def test_combine_amr_adds_mfa_for_two_distinct_factors():
    assert combine_amr(["pwd"], "otp") == ["pwd", "otp", "mfa"]
    assert combine_amr(["sms"], "sms") == ["sms"]
    assert combine_amr(["pwd", "otp", "mfa"], "sms") == ["pwd", "otp", "sms", "mfa"]


@pytest.mark.parametrize("value,message", [
    ("L1,L2,L3", "four distinct"), ("L1,L1,L2,L3", "four distinct"),
    ("0,L2,L3,L4", "four distinct"),
])
def test_acr_values_setting_is_checked(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({"instance_path": str(tmp_path)},
                      environ={"IDP_ASSURANCE__ACR_VALUES": value})


def test_acr_values_from_the_environment(tmp_path):
    settings = load_settings({"instance_path": str(tmp_path)},
                             environ={"IDP_ASSURANCE__ACR_VALUES": "a1, a2,a3,a4"})
    assert settings["assurance"]["acr_values"] == ["a1", "a2", "a3", "a4"]
