"""Authentication context: which assurance level a login achieves, and what
a client's request for a level demands.

The ``acr`` of a login is the account's identity assurance level capped by
the strength of the authentication methods used (RFC 8176 ``amr``). What
each method counts for is one table, :data:`METHODS`: whether it is a
knowledge or a possession factor, which ``[assurance]`` setting caps a
login that used it (one factor reaches at most ``single_factor_max_level``,
two factors, ``mfa``, ``multi_factor_max_level``, a kiosk card read
``kiosk_max_level``), and whether a step-up offers it as a further factor.
A new login method is a row here. Levels are ordered; a higher level
satisfies a lower one. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: OIDC Core §2: "0" -- the authentication does not meet ISO/IEC 29115
#: level 1. Given to logins of accounts that have no verified phone or
#: registry evidence yet.
ACR_NONE = "0"
#: Kinds of authentication factor (NIST SP 800-63B §5.1).
KNOWLEDGE = "knowledge"
POSSESSION = "possession"


@dataclass(frozen=True)
class AuthenticationMethod:
    """One RFC 8176 ``amr`` value and what it counts for.

    :ivar amr: the value reported in ``amr``.
    :ivar factor: :data:`KNOWLEDGE` or :data:`POSSESSION`; None for a value
        that is no factor on its own (``mfa``). Two distinct factors make
        ``mfa`` (:func:`combine_amr`).
    :ivar cap: the strength whose ``[assurance] <cap>_max_level`` setting
        caps a login that used it: ``single_factor``, ``multi_factor`` or
        ``kiosk`` (fields of :class:`AcrPolicy`).
    :ivar step_up_credential: what an account must hold for a step-up to
        offer this method as a further factor (``password``,
        ``verified_phone``: :func:`idp.oidc.stepup.step_up_factors`); None
        when a step-up never offers it.
    """

    amr: str
    factor: str | None
    cap: str = "single_factor"
    step_up_credential: str | None = None


#: Every authentication method the provider reports, in the order a step-up
#: offers its factors.
METHODS: tuple[AuthenticationMethod, ...] = (
    AuthenticationMethod("sms", POSSESSION, step_up_credential="verified_phone"),
    AuthenticationMethod("pwd", KNOWLEDGE, step_up_credential="password"),
    AuthenticationMethod("otp", POSSESSION),
    AuthenticationMethod("hwk", POSSESSION, cap="kiosk"),
    AuthenticationMethod("swk", POSSESSION),
    AuthenticationMethod("pin", KNOWLEDGE),
    AuthenticationMethod("mfa", None, cap="multi_factor"),
)
#: RFC 8176 methods that are a knowledge or possession factor on their own.
FACTORS = frozenset(m.amr for m in METHODS if m.factor is not None)
_BY_AMR = {m.amr: m for m in METHODS}
#: The strengths a method's ``cap`` may name, each an ``[assurance]`` setting.
STRENGTHS = ("single_factor", "multi_factor", "kiosk")


def combine_amr(first: Iterable[str], added: str) -> list[str]:
    """The ``amr`` after a further factor ``added`` to an authentication that
    used ``first``; ``mfa`` is added once two distinct factors were used
    (RFC 8176 §2). Order: the methods in the order used, then ``mfa``."""
    methods = [m for m in first if m != "mfa"]
    if added not in methods:
        methods.append(added)
    if len({m for m in methods if m in FACTORS}) >= 2:
        methods.append("mfa")
    return methods


@dataclass(frozen=True)
class AcrPolicy:
    """The four levels' ``acr`` values and the caps per authentication strength
    (:data:`STRENGTHS`), which :data:`METHODS` assigns to each ``amr`` value.

    :ivar values: ``acr`` of levels 1..4, lowest first.
    :ivar single_factor: highest level of a one-factor login (any login).
    :ivar multi_factor: highest level of a login with ``mfa``.
    :ivar kiosk: highest level of a kiosk card login (``hwk``).
    """

    values: tuple[str, ...]
    single_factor: int
    multi_factor: int
    kiosk: int

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AcrPolicy:
        """Build the policy from the ``[assurance]`` settings table."""
        assurance = settings["assurance"]
        return cls(tuple(assurance["acr_values"]),
                   **{strength: assurance[f"{strength}_max_level"] for strength in STRENGTHS})

    def acr_of(self, level: int) -> str:
        """The ``acr`` value of ``level`` (0..4); level 0 is :data:`ACR_NONE`."""
        return self.values[level - 1] if 1 <= level <= 4 else ACR_NONE

    def level_of(self, acr: str | None) -> int | None:
        """The level an ``acr`` value names, 0 for :data:`ACR_NONE`, None if unknown."""
        if acr == ACR_NONE:
            return 0
        return self.values.index(acr) + 1 if acr in self.values else None

    def max_level(self, strength: str) -> int:
        """The cap of ``strength``, one of :data:`STRENGTHS`.

        :raises ValueError: ``strength`` is not one of them.
        """
        if strength not in STRENGTHS:
            raise ValueError(f"unknown authentication strength {strength!r}")
        return getattr(self, strength)

    def method_cap(self, amr: Iterable[str]) -> int:
        """Highest level the authentication methods ``amr`` can support: the
        highest cap of the :data:`METHODS` used, and at least a one-factor
        login's (an ``amr`` value not in the table adds nothing)."""
        return max([self.single_factor,
                    *(self.max_level(_BY_AMR[m].cap) for m in amr if m in _BY_AMR)])

    def achieved(self, account_level: int, amr: Iterable[str]) -> int:
        """Level of a login: the account's level capped by its methods."""
        return min(account_level, self.method_cap(amr))

    def required_level(self, acr_values: str | None, essential: list[str] | None,
                       client_min: str | None) -> int:
        """The lowest level that satisfies the request (0 if none asked).

        :param acr_values: the space-separated ``acr_values`` parameter
            (OIDC Core §3.1.2.1); any listed level is acceptable, so the
            lowest known one counts. Unknown values are ignored.
        :param essential: values of an essential ``acr`` claims request
            (OIDC Core §5.5.1.1); likewise the lowest counts.
        :param client_min: the client's registered minimum ``acr``.
        """
        needed = 0
        for wanted in ((acr_values or "").split(), essential or []):
            levels = [lv for lv in (self.level_of(v) for v in wanted) if lv is not None]
            if levels:
                needed = max(needed, min(levels))
        floor = self.level_of(client_min)
        return max(needed, floor or 0)

    def reported(self, achieved: int, essential: list[str] | None) -> str:
        """The ``acr`` to put in the ID token for a login of level ``achieved``.

        An essential request names acceptable values, and the returned value
        must be one of them (OIDC Core §5.5.1.1): the highest listed value
        the achieved level satisfies. Otherwise the achieved level itself.
        """
        if essential:
            satisfied = [lv for lv in (self.level_of(v) for v in essential)
                         if lv is not None and lv <= achieved]
            if satisfied:
                return self.acr_of(max(satisfied))
        return self.acr_of(achieved)
