"""Throttling of login attempts per account identifier and per client IP.

Counters live in the store (fixed windows), so the limit holds across every
worker process. The caller names what is counted: the account an
identifier resolved to, or a keyed hash of an identifier that names none,
so an unknown username is throttled exactly like a known one (no
enumeration) and the store never holds a typed identifier.

Both counters are incremented *before* the slow password check (a
reservation), so parallel guesses cannot all pass the check while the first
ones are still being verified. A successful login clears the account counter
and gives its reservation back to the IP counter, so the IP counter ends up
counting failures only and many people behind one office NAT can log in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from idp.store import Store


class ThrottledError(Exception):
    """Too many attempts; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; retry after {retry_after} s")
        self.retry_after = retry_after


def _account_key(identifier: str) -> str:
    return "rl:login:acct:" + hashlib.sha256(identifier.encode()).hexdigest()[:32]


def _ip_key(ip: str) -> str:
    return f"rl:login:ip:{ip}"


def reserve_attempt(store: Store, settings: Mapping[str, Any], identifier: str,
                    ip: str | None) -> None:
    """Count this attempt against the IP and the account; refuse when either
    goes over its limit.

    :param settings: the ``[throttle]`` table.
    :raises ThrottledError: with the seconds until the window ends.
    """
    if ip and store.incr(_ip_key(ip), settings["ip_window"]) > settings["ip_failures"]:
        store.incr(_ip_key(ip), settings["ip_window"], -1)
        raise ThrottledError(store.ttl(_ip_key(ip)) or 1)
    key = _account_key(identifier)
    if store.incr(key, settings["account_window"]) > settings["account_failures"]:
        raise ThrottledError(store.ttl(key) or 1)


def note_success(store: Store, settings: Mapping[str, Any], identifier: str,
                 ip: str | None) -> None:
    """After a successful login: reset the account counter and give the
    attempt back to the IP counter (which then counts failures only)."""
    store.delete(_account_key(identifier))
    if ip:
        store.incr(_ip_key(ip), settings["ip_window"], -1)
