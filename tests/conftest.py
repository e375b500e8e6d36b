"""Shared fixtures: settings for the embedded defaults or, when
``IDP_TEST_DATABASE_URL`` / ``IDP_TEST_REDIS_URL`` are set, PostgreSQL and Redis;
a live provider on 127.0.0.1; factories for accounts and clients."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
from werkzeug.serving import make_server

from tests.helpers import (
    ProviderHandle,
    audit_reads_wait_for_the_writer,
    each_app_context_is_a_unit,
)

TEST_PASSWORD = "correct horse battery"
# One set of secrets for every provider of a run, so extra providers sharing
# the run's PostgreSQL database can read each other's signing keys.
SECRETS = {
    "secret_key": secrets.token_urlsafe(32),
    "key_encryption_key": secrets.token_urlsafe(32),
    "token_hmac_key": secrets.token_urlsafe(32),
    "pii_keys": "k1=" + secrets.token_urlsafe(32),
    "pii_index_key": secrets.token_urlsafe(32),
    "pairwise_key": secrets.token_urlsafe(32),
}

audit_reads_wait_for_the_writer()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def fresh_postgres_database(base: str) -> Iterator[str]:
    """Create an empty PostgreSQL database beside the one ``base`` names,
    yield its URL, and drop it afterwards."""
    import sqlalchemy as sa

    name = f"idp_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(base)
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this run, or None for SQLite."""
    base = os.environ.get("IDP_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    with fresh_postgres_database(base) as url:
        yield url


def make_settings(tmp_path, database_url: str | None, port: int, **sections) -> dict:
    """Test settings: fast argon2 parameters, a unique store prefix."""
    settings: dict = {
        "issuer": f"http://127.0.0.1:{port}",
        "instance_path": str(tmp_path),
        "database_url": database_url or f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "redis_url": os.environ.get("IDP_TEST_REDIS_URL", ""),
        "store_prefix": f"idptest:{uuid.uuid4().hex[:8]}:",
        "passwords": {"argon2_time_cost": 1, "argon2_memory_cost": 8192},
        "secrets": dict(SECRETS),
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            settings.setdefault(key, {}).update(value)
        else:
            settings[key] = value
    return settings


def start_provider(tmp_path, database_url: str | None, **sections) -> ProviderHandle:
    """Create an app and serve it from a thread on 127.0.0.1."""
    from idp import create_app

    port = free_port()
    app = each_app_context_is_a_unit(
        create_app(make_settings(tmp_path, database_url, port, **sections)))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return ProviderHandle(app=app, server=server, url=f"http://127.0.0.1:{port}")


@pytest.fixture(scope="session")
def provider(tmp_path_factory, database_url) -> Iterator[ProviderHandle]:
    """The provider for the whole run, live on 127.0.0.1."""
    handle = start_provider(tmp_path_factory.mktemp("idp"), database_url)
    yield handle
    handle.stop()


@pytest.fixture
def make_provider(tmp_path_factory, database_url):
    """Start an extra provider with other settings (e.g. short code lifetime)."""
    started: list[ProviderHandle] = []

    def factory(**sections) -> ProviderHandle:
        handle = start_provider(tmp_path_factory.mktemp("idp-extra"), database_url, **sections)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture
def relying_parties(provider):
    """Two department sites, each a trusted client of the run's provider."""
    from tests.relying_parties import start_relying_party

    pair = (start_relying_party(provider, "Department of Civil Affairs"),
            start_relying_party(provider, "Human Resources and Social Security"))
    yield pair
    for rp in pair:
        rp.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, database_url):
    """A seeded sandbox gateway and a provider wired to it, one pair per test
    module: ``(provider, gateway)``. SMS resends wait 1 s and registry queries
    are not retried, so tests can resend codes and inject outages quickly."""
    from tests.sandbox_support import start_gateway_provider

    provider, gateway = start_gateway_provider(tmp_path_factory, database_url,
                                               sms={"resend_after": 1},
                                               gateway={"retries": 0})
    yield provider, gateway
    provider.stop()
    gateway.stop()
