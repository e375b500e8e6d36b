"""Login throttling rules without HTTP: progressive delays, the counters of
known browsers (device cookies) and unknown ones, the per-IP limit, and
the signed device cookie itself."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from idp.authn import throttle
from idp.store import embedded
from idp.store.embedded import EmbeddedStore

KEY = b"k" * 32
LIMITS = {"account_failures": 3, "account_window": 86400, "device_failures": 2,
          "first_delay": 10, "max_delay": 40, "ip_failures": 100, "ip_window": 900,
          "device_cookie_ttl": 1000, "device_cookie_accounts": 3}


@pytest.fixture
def clock(monkeypatch):
    """The store's clock, moved by hand: ``clock.now += seconds``."""
    state = SimpleNamespace(now=1_800_000_000.0)
    monkeypatch.setattr(embedded, "time", SimpleNamespace(time=lambda: state.now,
                                                          monotonic=time.monotonic,
                                                          sleep=time.sleep))
    return state


@pytest.fixture
def store(tmp_path, clock):
    return EmbeddedStore(str(tmp_path / "store.sqlite3"))


def _attempt(store, identifier="account:1", ip="10.0.0.1", device=None, limits=LIMITS):
    """``None`` when the attempt may go on (and fails), else the wait in seconds."""
    try:
        throttle.reserve_attempt(store, limits, identifier, ip, device)
    except throttle.ThrottledError as exc:
        return exc.retry_after
    return None


def test_delay_schedule():
    assert [throttle.delay_after(LIMITS, n, 3) for n in range(1, 9)] == \
        [0, 0, 10, 20, 40, 40, 40, 40]
    assert throttle.delay_after(LIMITS, 10**6, 3) == 40


def test_delays_grow_and_never_block_for_good(store, clock):
    """Regression: five failures blocked the account for the whole window.
    Now the first failures are free, then each attempt waits, twice as long
    after each failure, up to the maximum; a refused attempt does not make
    the wait longer."""
    assert [_attempt(store) for _ in range(3)] == [None, None, None]
    waits = []
    for _ in range(5):
        wait = _attempt(store)
        waits.append(wait)
        assert _attempt(store) == wait  # asking again does not add to it
        clock.now += wait - 4
        assert _attempt(store) == 4
        clock.now += 4
        assert _attempt(store) is None  # the wait is over: one more try
    assert waits == [10, 20, 40, 40, 40]


def test_success_ends_the_waits(store, clock):
    for _ in range(3):
        _attempt(store)
    assert _attempt(store) == 10
    clock.now += 10
    assert _attempt(store) is None
    throttle.note_success(store, LIMITS, "account:1", "10.0.0.1")
    assert [_attempt(store) for _ in range(3)] == [None, None, None]


def test_known_browser_has_its_own_count(store):
    """A stranger's failures (unknown browsers) do not slow down a browser
    with a device cookie for the account, and its own failures (a stolen
    cookie) do not slow down anyone else."""
    for _ in range(3):
        _attempt(store)
    assert _attempt(store) == 10
    assert _attempt(store, device="owner-nonce") is None
    throttle.note_success(store, LIMITS, "account:1", "10.0.0.1", "owner-nonce")
    # The owner's success does not reset the strangers' count.
    assert _attempt(store) == 10
    assert [_attempt(store, device="stolen") for _ in range(3)] == [None, None, 10]
    assert _attempt(store, device="other-browser") is None
    # Each counter is per account and per what is guessed at.
    assert _attempt(store, identifier="account:2") is None
    assert _attempt(store, identifier="totp:1", device="stolen") is None


def test_refused_attempts_do_not_count_against_the_ip(store):
    limits = {**LIMITS, "ip_failures": 5}
    for _ in range(3):
        _attempt(store, limits=limits)
    for _ in range(10):
        assert _attempt(store, limits=limits) == 10
    # Three failures were counted for the IP, not the thirteen attempts.
    assert _attempt(store, identifier="account:2", limits=limits) is None
    assert _attempt(store, identifier="account:3", limits=limits) is None
    assert _attempt(store, identifier="account:4", limits=limits) == 900


def _cookie(value, now=5000):
    return throttle.read_device_cookie(KEY, value, LIMITS, now)


def _remember(cookie, account_id, generation, proof=throttle.PROOF_SECRET, now=5000):
    return throttle.remember_device(KEY, cookie, account_id, generation, LIMITS, now=now,
                                    proof=proof)


def test_device_cookie_round_trip_and_bounds():
    value = _remember(_cookie(None), 7, 2)
    cookie = _cookie(value)
    nonce = cookie.nonce_for(7, 2)
    assert nonce and len(cookie.entries) == 1
    # Another account is added first; the same account comes first again,
    # renewed, with the nonce it had (no fresh counters by signing in again).
    value = _remember(cookie, 8, 0)
    value = _remember(_cookie(value), 7, 2, now=5050)
    cookie = _cookie(value)
    assert [e.account_id for e in cookie.entries] == [7, 8]
    assert cookie.nonce_for(7, 2) == nonce and cookie.entries[0].issued_at == 5050
    # At most device_cookie_accounts accounts; the least recent is dropped.
    for account_id in (9, 10):
        value = _remember(_cookie(value), account_id, 0)
    assert [e.account_id for e in _cookie(value).entries] == [10, 9, 7]
    # Only ids, session generations, times and random nonces: no identifier.
    assert all(part.isdigit() for e in value.split("~") for part in e.split(".")[:3])


def test_a_browser_known_by_an_sms_code_has_no_guesses_of_its_own():
    """Adversarial review, finding 1 (regression): every SMS sign-in gave a
    fresh nonce, and with it fresh guesses at the password. A browser known
    by an SMS code alone has its own counters for codes to the phone only;
    a password (or authenticator) login makes it known for the secrets, and
    an SMS sign-in of the same generation does not take that away."""
    by_sms = _cookie(_remember(_cookie(None), 7, 2, throttle.PROOF_PHONE))
    nonce = by_sms.nonce_for(7, 2, phone=True)
    assert nonce and by_sms.nonce_for(7, 2) is None
    by_password = _cookie(_remember(by_sms, 7, 2))
    assert by_password.nonce_for(7, 2) == by_password.nonce_for(7, 2, phone=True) == nonce
    again_by_sms = _cookie(_remember(by_password, 7, 2, throttle.PROOF_PHONE))
    assert again_by_sms.nonce_for(7, 2) == nonce
    # A new generation (a password reset by SMS...) must be proven again;
    # the browser keeps its nonce, and so its counters.
    next_generation = _cookie(_remember(by_password, 7, 3, throttle.PROOF_PHONE))
    assert next_generation.nonce_for(7, 3) is None
    assert next_generation.nonce_for(7, 3, phone=True) == nonce
    with pytest.raises(ValueError):
        _remember(_cookie(None), 7, 2, "x")


def test_device_cookie_refuses_forgery_age_and_old_generations():
    value = _remember(_cookie(None), 7, 2)
    assert _cookie(value).nonce_for(7, 3) is None  # password reset, suspension...
    assert _cookie(value).nonce_for(8, 2) is None  # another account
    assert _cookie(value, now=5999).nonce_for(7, 2) is not None
    assert _cookie(value, now=6000).entries == ()  # older than device_cookie_ttl
    assert throttle.read_device_cookie(b"x" * 32, value, LIMITS, 5000).entries == ()
    account, generation, issued, nonce, proof, mac = value.split(".")
    for forged in (f"8.{generation}.{issued}.{nonce}.{proof}.{mac}",
                   f"{account}.{generation}.{issued}.other.{proof}.{mac}",
                   f"{account}.{generation}.{int(issued) + 1}.{nonce}.{proof}.{mac}",
                   f"{account}.{generation}.{issued}.{nonce}.{proof}.{mac[:-1]}",
                   f"{account}.{generation}.{issued}.{nonce}.{mac}",
                   value + ".x", "", "~~~", "a.b.c.d.e.f", "1" * 5000):
        assert _cookie(forged).entries == (), forged
    # An entry won by an SMS code cannot be turned into one that proved a secret.
    by_sms = _remember(_cookie(None), 7, 2, throttle.PROOF_PHONE)
    account, generation, issued, nonce, _proof, mac = by_sms.split(".")
    forged = f"{account}.{generation}.{issued}.{nonce}.{throttle.PROOF_SECRET}.{mac}"
    assert _cookie(forged).entries == ()
    # A forged entry does not spoil the valid ones beside it.
    assert _cookie(f"garbage~{value}").nonce_for(7, 2) is not None


def test_a_known_browser_is_not_stopped_by_the_ip_count(store):
    """Adversarial review, finding 2 (regression): the per-IP count was
    checked first for every browser, so guesses at anything from one
    address (a service hall, a carrier's NAT) stopped the owners' known
    browsers there too. A known browser counts against its own counter
    only, and its attempts neither use nor give back the IP's."""
    limits = {**LIMITS, "ip_failures": 2}
    assert [_attempt(store, identifier=f"unknown:{n}", limits=limits)
            for n in range(3)] == [None, None, 900]
    assert _attempt(store, device="owner-nonce", limits=limits) is None
    throttle.note_success(store, limits, "account:1", "10.0.0.1", "owner-nonce")
    assert _attempt(store, identifier="unknown:9", limits=limits) == 900
    # Its own failures are still limited, by its own counter.
    assert [_attempt(store, device="stolen", limits=limits) for _ in range(3)] == \
        [None, None, 10]


@pytest.mark.parametrize("section,values,message", [
    ("throttle", {"first_delay": 0}, "throttle.first_delay must be at least 1"),
    ("throttle", {"first_delay": 60, "max_delay": 30}, "throttle.max_delay must be at least"),
    ("throttle", {"device_cookie_accounts": 0}, "throttle.device_cookie_accounts"),
    ("sms", {"global_hourly_budget": 0}, "sms.global_hourly_budget must be at least 1"),
    ("sms", {"notice_interval": 0}, "sms.notice_interval must be at least 1"),
    ("sms", {"own_number_hourly": -1}, "sms.own_number_hourly must not be negative"),
    ("sms", {"allowed_country_codes": ["+86"]}, "sms.allowed_country_codes must list"),
    ("sms", {"allowed_country_codes": []}, "sms.allowed_country_codes must list"),
])
def test_limit_settings_are_checked(tmp_path, section, values, message):
    from idp.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=message):
        load_settings({"instance_path": str(tmp_path), section: values}, environ={})
