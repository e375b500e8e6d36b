"""Throttling of failed logins per account identifier and per client IP.

Counters live in the store (fixed windows), so the limit holds across every
worker process. Keys use a hash of the typed identifier, so an unknown
username is throttled exactly like a known one (no enumeration).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from idp.store import Store


class ThrottledError(Exception):
    """Too many failures; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; retry after {retry_after} s")
        self.retry_after = retry_after


def _keys(identifier: str, ip: str | None) -> list[tuple[str, str]]:
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:32]
    keys = [("account", f"rl:login:acct:{digest}")]
    if ip:
        keys.append(("ip", f"rl:login:ip:{ip}"))
    return keys


def check_allowed(store: Store, settings: Mapping[str, Any], identifier: str,
                  ip: str | None) -> None:
    """Refuse an attempt when the account or IP counter is at its limit.

    :param settings: the ``[throttle]`` table.
    :raises ThrottledError: with the seconds until the window ends.
    """
    limits = {"account": settings["account_failures"], "ip": settings["ip_failures"]}
    for kind, key in _keys(identifier, ip):
        if store.counter(key) >= limits[kind]:
            raise ThrottledError(store.ttl(key) or 1)


def note_failure(store: Store, settings: Mapping[str, Any], identifier: str,
                 ip: str | None) -> None:
    """Count one failed attempt against the account identifier and the IP."""
    windows = {"account": settings["account_window"], "ip": settings["ip_window"]}
    for kind, key in _keys(identifier, ip):
        store.incr(key, windows[kind])


def clear_account(store: Store, identifier: str) -> None:
    """Reset the account counter after a successful login."""
    store.delete(_keys(identifier, None)[0][1])
