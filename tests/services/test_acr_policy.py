"""The acr policy below HTTP (idp.oidc.acr, idp.oidc.stepup): what each
authentication method of the table caps a login at, which factors a
step-up offers an account, and the level a saved request needs."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.registries import Registries
from idp.oidc import interaction
from idp.oidc.acr import FACTORS, KNOWLEDGE, METHODS, POSSESSION, STRENGTHS, AcrPolicy
from idp.oidc.authorize import step_up_state
from idp.oidc.stepup import CREDENTIALS, evaluate, step_up_factors

#: Caps that differ from each other, so each method's shows.
POLICY = AcrPolicy(("L1", "L2", "L3", "L4"), single_factor=1, multi_factor=3, kiosk=2)


@pytest.mark.parametrize("amr,cap", [
    ("pwd", 1), ("sms", 1), ("otp", 1), ("swk", 1), ("pin", 1), ("hwk", 2), ("mfa", 3),
    # Not in the table: no more than one factor.
    ("fed", 1),
])
def test_each_method_caps_a_login(amr, cap):
    assert POLICY.method_cap([amr]) == cap


def test_the_table():
    assert len({m.amr for m in METHODS}) == len(METHODS)
    assert all(m.cap in STRENGTHS for m in METHODS)
    assert all(m.factor in (KNOWLEDGE, POSSESSION, None) for m in METHODS)
    assert all(m.step_up_credential in (None, *CREDENTIALS) for m in METHODS)
    assert FACTORS == {"pwd", "sms", "otp", "hwk", "swk", "pin"}
    assert [m.amr for m in METHODS if m.step_up_credential] == ["sms", "pwd"]
    # The strongest method used counts, never less than one factor.
    assert POLICY.method_cap(["pwd", "hwk", "mfa"]) == 3
    assert POLICY.method_cap([]) == 1
    with pytest.raises(ValueError):
        POLICY.max_level("quantum")


def test_caps_come_from_the_settings(rt):
    assurance = rt.settings["assurance"]
    assert AcrPolicy.from_settings(rt.settings) == rt.acr
    for strength in STRENGTHS:
        assert rt.acr.max_level(strength) == assurance[f"{strength}_max_level"]


def test_factors_offered_to_an_account(rt, account):
    with_gateway = dataclasses.replace(rt, registries=Registries(sms=object()))
    assert step_up_factors(rt, account, ["hwk"]) == ("pwd",)
    # A code to the phone needs a verified phone and the SMS gateway.
    assert step_up_factors(with_gateway, account, ["hwk"]) == ("pwd",)
    account.phone_number_verified = True
    assert step_up_factors(rt, account, ["hwk"]) == ("pwd",)
    assert step_up_factors(with_gateway, account, ["hwk"]) == ("sms", "pwd")
    # Never a factor the login already used.
    assert step_up_factors(with_gateway, account, ["sms"]) == ("pwd",)
    assert step_up_factors(with_gateway, account, ["pwd"]) == ("sms",)
    account.password_hash = None
    assert step_up_factors(with_gateway, account, ["sms"]) == ()


def test_evaluate(rt, account):
    state = evaluate(rt, account, ["pwd"], 0)
    assert state.met and state.cap == rt.acr.single_factor
    assert state.factors == ()  # the password is used and there is no phone
    state = evaluate(rt, account, ["pwd"], 3)
    assert not state.met and state.needs_verification and state.needs_factor
    assert state.factor_cap == rt.acr.multi_factor
    # No gateway to verify against: nothing can lift the identity.
    assert not state.reachable
    account.reverification_required = True
    assert evaluate(rt, account, ["pwd", "otp", "mfa"], 0).required == 2


def test_step_up_needs_the_level_the_saved_request_asked(rt, client, account):
    info = rt.clients.get(client.client_id)

    def saved(**args: str) -> interaction.Interaction:
        return interaction.start(rt.store, {"client_id": [client.client_id],
                                            **{k: [v] for k, v in args.items()}},
                                 "browser-1", "192.0.2.1", rt.settings["throttle"], rt.pii)

    assert step_up_state(rt, saved(), info, account, ["pwd"]).required == 0
    assert step_up_state(rt, saved(acr_values="L3 L2"), info, account, ["pwd"]).required == 2
    essential = '{"id_token": {"acr": {"essential": true, "values": ["L3"]}}}'
    assert step_up_state(rt, saved(claims=essential), info, account, ["pwd"]).required == 3
    # A claims parameter that does not parse was refused before it was saved;
    # acr_values still count.
    assert step_up_state(rt, saved(claims="{", acr_values="L2"), info, account,
                         ["pwd"]).required == 2
