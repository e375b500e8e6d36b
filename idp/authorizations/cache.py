"""What the token endpoints need to know about a grant, cached per process.

A grant's account, client, scope and claims request never change after it
is created; only its revocation does, and every revocation writes a store
marker that the token checks read on each request
(:data:`idp.authorizations.service.REVOKED_GRANT`, and
:data:`~idp.authorizations.service.REVOKED_CLIENT_GRANTS` for all of a
client's grants at once). The database row is read again after
:data:`LOCAL_TTL` seconds, so a revocation whose marker was lost with the
store (a Redis restarted without persistence) still holds within that time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from idp.authorizations.models import Grant
from idp.extensions import db

#: Longest time a grant's facts are used without reading its row, seconds.
LOCAL_TTL = 30.0
#: Most grants a process keeps; past it the cache starts afresh.
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class GrantFacts:
    """The immutable part of a :class:`Grant`, and whether it was revoked
    when its row was read.

    :ivar claims: the ``claims`` request parameter of the authorization, or None.
    :ivar created_at: when the grant was made, UTC.
    """

    id: str
    account_id: int
    client_id: str
    scope: str
    claims: dict | None
    created_at: datetime
    revoked: bool


class GrantCache:
    """Per-process :class:`GrantFacts` by grant id; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, GrantFacts]] = {}

    def get(self, grant_id: str) -> GrantFacts | None:
        """The facts of ``grant_id``, from this process's cache or its row;
        None if there is no such grant (never cached)."""
        now = time.monotonic()
        hit = self._entries.get(grant_id)
        if hit is not None and now - hit[0] < LOCAL_TTL:
            return hit[1]
        row = db.session.get(Grant, grant_id)
        if row is None:
            return None
        facts = GrantFacts(row.id, row.account_id, row.client_id, row.scope, row.claims,
                           row.created_at, row.revoked_at is not None)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[grant_id] = (now, facts)
        return facts
