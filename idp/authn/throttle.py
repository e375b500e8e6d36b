"""Throttling of login attempts: progressive delays per account, per known
browser (device cookie) and per client IP.

Counters live in the store, so the limits hold across every worker process.
The caller names what is counted: the account an identifier resolved to, or
a keyed hash of an identifier that names none, so an unknown username is
throttled exactly like a known one (no enumeration) and the store never
holds a typed identifier.

Known browsers (OWASP, "Slow Down Online Guessing Attacks with Device
Cookies"): after a successful login the browser gets a signed device cookie
naming the account, with a nonce that stays the browser's own for that
account (renewing the cookie keeps it). An attempt for that account from a
browser with a valid device cookie for it counts against that cookie's own
counter (its nonce) instead of the account's counter for unknown browsers
and the IP's; so a stranger's guesses, at the account or at anything from
the same address, never slow the owner down in a browser they signed in
with before, and a stolen device cookie slows down only itself. A browser
known only by an SMS code (it proved the phone, :data:`PROOF_PHONE`) has
its own counters for codes to that phone, never for the account's secrets:
whoever holds the phone must not get fresh password guesses with each SMS
sign-in.

Progressive delays instead of a lockout: the first ``account_failures``
(``device_failures`` for a known browser) failures in ``account_window``
seconds are free; after that each attempt must wait ``first_delay``
seconds, doubling with every further failure up to ``max_delay``. The
per-IP counter of unknown browsers is a plain limit (``ip_failures`` per
``ip_window``).

Every counter is reserved *before* the slow password check, and past the
free failures only one attempt at a time can hold the wait (an atomic
``add``), so parallel guesses cannot pass the check while earlier ones are
still being verified. A refused attempt checked nothing and is given back.
A successful login clears the counter it used and gives its reservation
back to the IP counter, so the IP counter ends up counting failures only
and many people behind one office NAT can log in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from idp.security import random_token
from idp.store import Store

#: Purpose of the key that signs device cookies, derived from the token HMAC key
#: (v2: entries name what the browser proved).
_DEVICE_KEY_PURPOSE = b"idp device cookie v2"
#: Longest cookie value read; a browser sends at most about 4 KiB anyway.
_MAX_COOKIE_LENGTH = 4096
#: Cap of the doubling exponent; the delay is capped by ``max_delay`` long before.
_MAX_DOUBLINGS = 30

#: What a browser proved to become known to an account (:attr:`DeviceEntry.proof`):
#: a secret of the account -- its password, or its authenticator app as the
#: second factor of a login -- ...
PROOF_SECRET = "s"
#: ... or only the account's phone (an SMS code), which gives the browser its
#: own counters for codes to that phone but none for the account's secrets.
PROOF_PHONE = "p"
_PROOFS = (PROOF_SECRET, PROOF_PHONE)


class ThrottledError(Exception):
    """Too many attempts; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class DeviceEntry:
    """One account a browser signed in to, from its device cookie.

    :ivar account_id: internal account id (never a personal identifier).
    :ivar generation: the account's session generation when it was issued;
        the entry stops counting when the account's moves on (password
        reset, suspension, a new second factor...).
    :ivar issued_at: Unix seconds of the login that issued (renewed) it.
    :ivar nonce: random value naming this browser's own counters for the
        account; kept when the entry is renewed.
    :ivar proof: :data:`PROOF_SECRET` or :data:`PROOF_PHONE`.
    """

    account_id: int
    generation: int
    issued_at: int
    nonce: str
    proof: str

    def payload(self) -> str:
        """The signed part of the entry."""
        return (f"{self.account_id}.{self.generation}.{self.issued_at}.{self.nonce}."
                f"{self.proof}")


@dataclass(frozen=True)
class DeviceCookie:
    """The accounts a browser signed in to before: the valid entries of its
    device cookie, most recent first (none for an unknown browser)."""

    entries: tuple[DeviceEntry, ...] = ()

    def entry_for(self, account_id: int) -> DeviceEntry | None:
        """The browser's entry for ``account_id`` of any session generation
        (whose nonce a renewed entry keeps), or None."""
        for entry in self.entries:
            if entry.account_id == account_id:
                return entry
        return None

    def nonce_for(self, account_id: int, generation: int, *, phone: bool = False) -> str | None:
        """The nonce of this browser for the account ``account_id`` in its
        current session ``generation``, or None when the browser is unknown
        to that account.

        :param phone: for the counters of SMS codes to the account's own
            number, which an entry won with such a code gives too; without
            it (the password, authenticator and recovery codes), only an
            entry whose login proved a secret of the account
            (:data:`PROOF_SECRET`) counts.
        """
        entry = self.entry_for(account_id)
        if entry is None or entry.generation != generation:
            return None
        return entry.nonce if phone or entry.proof == PROOF_SECRET else None


def _device_key(token_hmac_key: bytes) -> bytes:
    return hmac.new(token_hmac_key, _DEVICE_KEY_PURPOSE, hashlib.sha256).digest()


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _parse_entry(key: bytes, text: str, now: int, max_age: int) -> DeviceEntry | None:
    parts = text.split(".")
    if len(parts) != 6:
        return None
    account_id, generation, issued_at, nonce, proof, mac = parts
    numbers = (account_id, generation, issued_at)
    if not all(p.isascii() and p.isdigit() and len(p) <= 12 for p in numbers):
        return None
    if not 0 < len(nonce) <= 64 or proof not in _PROOFS:
        return None
    entry = DeviceEntry(int(account_id), int(generation), int(issued_at), nonce, proof)
    if not hmac.compare_digest(_mac(key, entry.payload()).encode(), mac.encode()):
        return None
    if not now - max_age < entry.issued_at <= now + 60:
        return None
    return entry


def read_device_cookie(token_hmac_key: bytes, value: str | None,
                       settings: Mapping[str, Any], now: int | None = None) -> DeviceCookie:
    """The valid entries of a device cookie value; anything forged, altered,
    older than ``device_cookie_ttl`` or beyond ``device_cookie_accounts``
    entries is ignored (the browser then counts as unknown to that account).

    :param token_hmac_key: the ``token_hmac_key`` secret; the signing key is
        derived from it for this purpose only.
    :param value: the cookie as the browser sent it, or None.
    :param settings: the ``[throttle]`` table.
    :param now: Unix seconds (default: the current time).
    """
    if not value or len(value) > _MAX_COOKIE_LENGTH:
        return DeviceCookie()
    key = _device_key(token_hmac_key)
    now = int(time.time()) if now is None else now
    entries: list[DeviceEntry] = []
    for text in value.split("~")[:settings["device_cookie_accounts"]]:
        entry = _parse_entry(key, text, now, settings["device_cookie_ttl"])
        if entry is not None and all(e.account_id != entry.account_id for e in entries):
            entries.append(entry)
    return DeviceCookie(tuple(entries))


def remember_device(token_hmac_key: bytes, cookie: DeviceCookie, account_id: int,
                    generation: int, settings: Mapping[str, Any], now: int | None = None,
                    *, proof: str) -> str:
    """The device cookie value to set after a successful login of
    ``account_id`` (or a change in the console that moved its session
    generation, made by this browser): its entry first, then the browser's
    other accounts, at most ``device_cookie_accounts`` in all (the least
    recently used is dropped; a family computer keeps a few).

    The entry keeps the nonce the browser already had for the account, of
    whatever generation, so signing in again gives no fresh counters (only
    a browser without an entry gets a new one). It proves a secret when
    this login did, or when the browser's entry of the same generation
    already did (an SMS sign-in does not make a known browser forget its
    password); a new generation must be proven again.

    :param cookie: the browser's current cookie (:func:`read_device_cookie`).
    :param generation: the account's current session generation.
    :param proof: what this login proved: :data:`PROOF_SECRET` (a password,
        or an authenticator code) or :data:`PROOF_PHONE` (an SMS code only).
    :returns: the signed value, ``~``-separated entries of
        ``account.generation.issued_at.nonce.proof.mac`` (base64url HMAC-SHA256).
    :raises ValueError: an unknown ``proof``.
    """
    if proof not in _PROOFS:
        raise ValueError(f"unknown device cookie proof {proof!r}")
    key = _device_key(token_hmac_key)
    now = int(time.time()) if now is None else now
    known = cookie.entry_for(account_id)
    if known is not None and known.generation == generation and known.proof == PROOF_SECRET:
        proof = PROOF_SECRET
    nonce = known.nonce if known is not None else random_token(16)
    fresh = DeviceEntry(account_id, generation, now, nonce, proof)
    others = [e for e in cookie.entries if e.account_id != account_id]
    entries = [fresh, *others][:settings["device_cookie_accounts"]]
    return "~".join(f"{e.payload()}.{_mac(key, e.payload())}" for e in entries)


def _ip_key(ip: str) -> str:
    return f"rl:login:ip:{ip}"


def _counter(settings: Mapping[str, Any], identifier: str,
             device: str | None) -> tuple[str, int]:
    """The store key of the counter an attempt counts against, and its free
    failures: the known browser's own, or the account's for unknown browsers."""
    if device:
        digest = hashlib.sha256(f"{identifier}\x00{device}".encode()).hexdigest()[:32]
        return "rl:login:dev:" + digest, settings["device_failures"]
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:32]
    return "rl:login:acct:" + digest, settings["account_failures"]


def delay_after(settings: Mapping[str, Any], failures: int, free: int) -> int:
    """Seconds the next attempt must wait after ``failures`` failures of
    which ``free`` needed no wait: 0, then ``first_delay`` doubling with
    each further failure, at most ``max_delay``."""
    if failures < free:
        return 0
    doublings = min(failures - free, _MAX_DOUBLINGS)
    return min(settings["first_delay"] * 2 ** doublings, settings["max_delay"])


def reserve_attempt(store: Store, settings: Mapping[str, Any], identifier: str,
                    ip: str | None, device: str | None = None) -> None:
    """Count this attempt: from an unknown browser against the IP and the
    account's counter for unknown browsers; from a browser whose device
    cookie is valid for the account, against that cookie's own counter
    only (so neither strangers guessing at the account nor anybody guessing
    from the same address -- a service hall, an office, a carrier's NAT --
    can slow the owner down there). Refuse when the IP is over its limit or
    the attempt comes before its wait is over.

    :param settings: the ``[throttle]`` table.
    :param identifier: what is guessed at, e.g. ``account:7`` or ``totp:7``.
    :param device: the nonce of the browser's valid device cookie for that
        account (:meth:`DeviceCookie.nonce_for`), or None.
    :raises ThrottledError: with the seconds to wait (nothing is counted then).
    """
    ip_key = _ip_key(ip) if ip and not device else None
    if ip_key and store.incr(ip_key, settings["ip_window"]) > settings["ip_failures"]:
        store.incr(ip_key, settings["ip_window"], -1)
        raise ThrottledError(store.ttl(ip_key) or 1)
    key, free = _counter(settings, identifier, device)
    failures = store.incr(key, settings["account_window"])
    delay = delay_after(settings, failures, free)
    # The attempt that makes the failures reach the free count already
    # holds the wait for the next one; only one attempt can hold it.
    if delay == 0 or store.add(key + ":wait", {"n": failures}, delay):
        return
    store.incr(key, settings["account_window"], -1)
    if ip_key:
        store.incr(ip_key, settings["ip_window"], -1)
    raise ThrottledError(store.ttl(key + ":wait") or 1)


def note_success(store: Store, settings: Mapping[str, Any], identifier: str,
                 ip: str | None, device: str | None = None) -> None:
    """After a successful check: clear the counter the attempt used (the
    device cookie's, or the account's for unknown browsers, never the other
    one) and give an unknown browser's attempt back to the IP counter
    (which then counts failures only). Arguments as for
    :func:`reserve_attempt`."""
    key, _free = _counter(settings, identifier, device)
    store.delete(key)
    store.delete(key + ":wait")
    if ip and not device:
        store.incr(_ip_key(ip), settings["ip_window"], -1)
