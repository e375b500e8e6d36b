"""Throttling of login attempts per account identifier and per client IP.

Counters live in the store (fixed windows), so the limit holds across every
worker process. Keys use a hash of the typed identifier, so an unknown
username is throttled exactly like a known one (no enumeration).

The account counter is incremented *before* the slow password check (a
reservation), so parallel guesses cannot all pass the check while the first
ones are still being verified; a successful login clears it. The IP counter
counts failures only, so many people behind one office NAT can still log in.
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
    """Refuse when the IP is over its failure limit; otherwise count this
    attempt against the account and refuse when that goes over its limit.

    :param settings: the ``[throttle]`` table.
    :raises ThrottledError: with the seconds until the window ends.
    """
    if ip and store.counter(_ip_key(ip)) >= settings["ip_failures"]:
        raise ThrottledError(store.ttl(_ip_key(ip)) or 1)
    key = _account_key(identifier)
    if store.incr(key, settings["account_window"]) > settings["account_failures"]:
        raise ThrottledError(store.ttl(key) or 1)


def note_failure(store: Store, settings: Mapping[str, Any], ip: str | None) -> None:
    """Count a failed attempt against the IP (the account attempt is already counted)."""
    if ip:
        store.incr(_ip_key(ip), settings["ip_window"])


def clear_account(store: Store, identifier: str) -> None:
    """Reset the account counter after a successful login."""
    store.delete(_account_key(identifier))
