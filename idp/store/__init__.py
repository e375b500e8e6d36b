"""Ephemeral state storage: authorization codes, SSO sessions, counters, replay caches.

:func:`create_store` picks the backend from configuration; code that uses the
store depends only on the :class:`Store` protocol and :class:`StoreError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from idp.store.base import Store, StoreError
from idp.store.embedded import EmbeddedStore

__all__ = ["Store", "StoreError", "create_store"]


def create_store(redis_url: str | None, embedded_path: str, prefix: str = "idp:",
                 kept: Sequence[str] = ()) -> Store:
    """Build the configured store without connecting to it.

    :param redis_url: a Redis URL (see :class:`~idp.store.redis.RedisStore`);
        empty or None selects the embedded SQLite store.
    :param embedded_path: database file of the embedded store; its parent
        directory is created if missing. Ignored when ``redis_url`` is set.
    :param prefix: key prefix, so several deployments or test runs can share
        one Redis database or one embedded file.
    :param kept: for Redis, the key prefixes whose values each process
        keeps while told of their changes (see
        :class:`~idp.store.redis.RedisStore`); the embedded store keeps
        what it reads of every key anyway.
    :returns: a :class:`~idp.store.redis.RedisStore` or
        :class:`~idp.store.embedded.EmbeddedStore`.
    :raises StoreError: if the embedded store's directory cannot be created.
    """
    if redis_url:
        # Imported here so deployments using the embedded store need not install redis-py.
        from idp.store.redis import RedisStore

        return RedisStore(redis_url, prefix, kept)

    directory = os.path.dirname(os.path.abspath(embedded_path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create directory for embedded store: {exc}") from exc
    return EmbeddedStore(embedded_path, prefix)
