"""Pending authorization requests ("interactions") while the user logs in or
consents, kept in the store and bound to one browser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from idp.accounts.pii import PiiCipher, PiiError
from idp.security import constant_time_equals, random_token
from idp.store import Store
from idp.timeutil import epoch

_PREFIX = "interaction:"
TTL = 1800


@dataclass
class Interaction:
    """An authorization request waiting for the user.

    :ivar id: random identifier used in URLs.
    :ivar args: the authorization request parameters, each a list of values.
    :ivar browser: random id of the browser (from its signed cookie) that started it.
    :ivar created: Unix seconds.
    :ivar login_at: ``auth_time`` of a login completed for this request, if any.
    :ivar consented_by: id of the account that approved on the consent
        screen; the approval counts for that account only.
    """

    id: str
    args: dict[str, list[str]]
    browser: str
    created: int
    login_at: int | None = None
    consented_by: int | None = None

    def arg(self, name: str) -> str | None:
        """First value of parameter ``name``, or None."""
        values = self.args.get(name)
        return values[0] if values else None


class TooManyInteractionsError(Exception):
    """The client IP started more sign-in requests than allowed in the window."""


#: Longest ``login_hint`` kept (encrypted) for the login page, characters.
MAX_LOGIN_HINT = 256


def start(store: Store, args: dict[str, list[str]], browser: str, ip: str | None,
          limits: Mapping[str, Any], pii: PiiCipher) -> Interaction:
    """Create and save an interaction for ``args`` started by ``browser``.

    Each one costs store space for :data:`TTL` seconds, so at most
    ``interactions_per_ip`` may be started per ``interaction_window`` per IP.
    A ``login_hint`` is often an identifier (a phone or ID number), so it is
    kept encrypted (read it with :func:`login_hint`); one longer than
    :data:`MAX_LOGIN_HINT` is dropped.

    :param limits: the ``[throttle]`` settings table.
    :param pii: the cipher of personal identifiers.
    :raises TooManyInteractionsError: over the per-IP limit.
    """
    if store.incr(f"rl:interaction:ip:{ip}", limits["interaction_window"]) > \
            limits["interactions_per_ip"]:
        raise TooManyInteractionsError(ip)
    args = dict(args)
    hints = [pii.encrypt("login_hint", v) for v in args.pop("login_hint", [])
             if len(v) <= MAX_LOGIN_HINT]
    if hints:
        args["login_hint"] = hints
    item = Interaction(id=random_token(18), args=args, browser=browser, created=epoch())
    store.put(_PREFIX + item.id, asdict(item), TTL)
    return item


def login_hint(pii: PiiCipher, item: Interaction) -> str | None:
    """The ``login_hint`` of the request, decrypted, or None."""
    sealed = item.arg("login_hint")
    if not sealed:
        return None
    try:
        return pii.decrypt("login_hint", sealed)
    except PiiError:
        return None


def load(store: Store, interaction_id: str | None, browser: str | None) -> Interaction | None:
    """The interaction if it exists and belongs to ``browser``; None otherwise."""
    if not interaction_id or not browser or len(interaction_id) > 64:
        return None
    data = store.get(_PREFIX + interaction_id)
    if data is None or not constant_time_equals(data["browser"], browser):
        return None
    return Interaction(**data)


def save(store: Store, item: Interaction) -> None:
    """Persist changes to ``item`` for the rest of its lifetime."""
    remaining = item.created + TTL - epoch()
    if remaining > 0:
        store.put(_PREFIX + item.id, asdict(item), remaining)


def finish(store: Store, item: Interaction) -> bool:
    """Take ``item`` out of the store before its authorization response is
    sent; of two concurrent resumes only one gets True, so one approval
    yields one code."""
    return store.take(_PREFIX + item.id) is not None
