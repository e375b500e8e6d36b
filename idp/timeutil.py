"""Time helpers: every stored and issued time is UTC; JWT times are integer seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Current time as a naive UTC datetime (the form stored in the database)."""
    return datetime.now(UTC).replace(tzinfo=None)


def epoch() -> int:
    """Current Unix time in whole seconds (RFC 7519 NumericDate)."""
    return int(time.time())


def to_epoch(value: datetime) -> int:
    """Convert a naive UTC datetime to whole Unix seconds."""
    return int(value.replace(tzinfo=UTC).timestamp())


def from_epoch(seconds: int) -> datetime:
    """Convert Unix seconds to a naive UTC datetime (the stored form, which
    :func:`idp.i18n.local_time` shows in the configured time zone)."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
