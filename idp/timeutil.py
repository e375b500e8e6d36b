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
