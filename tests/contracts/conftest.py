"""Fixtures shared by the store's contract tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import closing

import pytest
import redis


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of the test's own in ``IDP_TEST_REDIS_URL``'s database,
    whose keys are removed afterwards."""
    prefix = f"idp-test:{uuid.uuid4().hex}:"
    yield prefix
    with closing(redis.Redis.from_url(os.environ["IDP_TEST_REDIS_URL"])) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
