"""The provincial identity provider: an OpenID Connect Provider on Flask."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from idp.config import ConfigError, decode_key, load_settings, pii_keys, theme_folder


def _page_lang() -> str:
    from flask_babel import get_locale

    return "zh-CN" if str(get_locale()) == "zh" else "en"


#: Seconds a statement waits for the SQLite database's write lock before it
#: fails as ``database is locked``.
SQLITE_LOCK_TIMEOUT = 30


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory.

    :param config: nested settings overriding ``config/default.toml`` and the
        environment (tests and the demo use it).
    :returns: the configured Flask application; the database schema is
        upgraded to the newest revision and signing keys exist.
    :raises idp.config.ConfigError: on invalid settings or missing production secrets.
    """
    from flask import template_rendered
    from werkzeug.exceptions import HTTPException

    from idp.accounts.passwords import PasswordHasher
    from idp.accounts.pii import PiiCipher
    from idp.accounts.snapshots import AccountCache
    from idp.audit.writer import AuditWriter
    from idp.authorizations.cache import GrantCache
    from idp.clients.cache import ClientCache
    from idp.clients.metadata import SCOPES
    from idp.extensions import babel, csrf, db, migrate
    from idp.i18n import (
        compile_catalogs,
        error_sentence,
        local_time,
        registry_answer,
        select_locale,
        time_zone_name,
    )
    from idp.oidc.acr import AcrPolicy
    from idp.oidc.discovery import provider_metadata, serialise
    from idp.oidc.keys import KeyRing
    from idp.oidc.server import AuthorizationServer
    from idp.runtime import Runtime
    from idp.single_logout.worker import LogoutWorker
    from idp.store import create_store
    from idp.unit_of_work import unit, wrap_views
    from idp.web import (
        SessionCookies,
        add_security_headers,
        allow_pending_redirect,
        csp_nonce,
        handle_http_error,
        handle_unexpected_error,
        reject_unreadable_parameters,
        see_other_after_post,
        signed_in_account,
    )

    settings = load_settings(config)
    theme = theme_folder(settings["theme"])
    app = Flask(__name__, template_folder=str(theme / "templates"),
                static_folder=str(theme / "static"), static_url_path="/static",
                instance_path=settings["instance_path"])
    _private_instance(Path(settings["instance_path"]))
    app.config.update(
        IDP=settings,
        SECRET_KEY=settings["secrets"]["secret_key"],
        SQLALCHEMY_DATABASE_URI=settings["database_url"],
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings["database_url"]),
        SESSION_COOKIE_NAME=settings["session"]["flask_cookie_name"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings["session"]["cookie_secure"],
        WTF_CSRF_TIME_LIMIT=3600,
        BABEL_DEFAULT_LOCALE=settings["default_locale"],
        BABEL_DEFAULT_TIMEZONE=settings["timezone"],
        OAUTH2_SCOPES_SUPPORTED=list(SCOPES),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.session_interface = SessionCookies()
    db.init_app(app)
    if settings["database_url"].startswith("sqlite"):
        with app.app_context():
            _tune_sqlite(db.engine)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "db"))
    csrf.init_app(app)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(
        compile_catalogs(Path(settings["instance_path"]) / "translations"))
    babel.init_app(app, locale_selector=select_locale)

    hmac_key = decode_key(settings["secrets"]["token_hmac_key"], "token_hmac_key")
    keys = KeyRing(decode_key(settings["secrets"]["key_encryption_key"], "key_encryption_key"),
                   settings["keys"]["retired_key_publish_seconds"],
                   settings["keys"]["cache_seconds"])
    store = create_store(settings["redis_url"] or None,
                         str(Path(settings["instance_path"]) / "store.sqlite3"),
                         prefix=settings["store_prefix"], kept=_kept_in_process())
    app.extensions["idp"] = Runtime(
        settings=settings, store=store, hasher=PasswordHasher(settings["passwords"]),
        keys=keys, clients=ClientCache(hmac_key, store), accounts=AccountCache(store),
        grants=GrantCache(), token_hmac_key=hmac_key,
        pairwise_key=decode_key(settings["secrets"]["pairwise_key"], "pairwise_key"),
        audit=AuditWriter(app),
        pii=PiiCipher(pii_keys(settings), settings["pii"]["active_key"],
                      settings["pii"]["algorithm"],
                      decode_key(settings["secrets"]["pii_index_key"], "pii_index_key"),
                      settings["pii"]["index_algorithm"]),
        acr=AcrPolicy.from_settings(settings),
        registries=_registries(settings),
        mail=_mailer(settings),
        legacy_logins=_legacy_logins(settings),
        logout=LogoutWorker(app) if settings["logout"]["worker"] else None,
    )
    app.extensions["idp.discovery"] = serialise(provider_metadata(settings))
    server = AuthorizationServer()
    server.init_app(app)
    app.extensions["authlib.server"] = server

    from idp.authn.kiosk.blueprint import bp as kiosk_bp
    from idp.authn.views import bp as authn_bp
    from idp.cas.blueprint import bp as cas_bp
    from idp.oidc.blueprint import bp as oidc_bp
    from idp.oidc.hop import SingleSignOnHop
    from idp.oidc.lanes import ResourceLanes
    from idp.oidc.public_documents import PublicDocuments
    from idp.portal.blueprint import bp as portal_bp

    app.register_blueprint(oidc_bp)
    app.register_blueprint(authn_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(kiosk_bp)
    app.register_blueprint(cas_bp)
    wrap_views(app)
    app.before_request(reject_unreadable_parameters)
    if app.extensions["idp"].logout is not None:
        app.before_request(app.extensions["idp"].logout.ensure_started)
    app.after_request(add_security_headers)
    app.after_request(see_other_after_post)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected_error)
    template_rendered.connect(allow_pending_redirect, app)
    app.jinja_env.globals.update(page_lang=_page_lang, csp_nonce=csp_nonce,
                                 signed_in_account=signed_in_account,
                                 error_sentence=error_sentence, time_zone_name=time_zone_name)
    app.jinja_env.filters.update(local_time=local_time, registry_answer=registry_answer)
    documents = PublicDocuments(app, ResourceLanes(app, SingleSignOnHop(app, app.wsgi_app)))
    app.wsgi_app = app.extensions["idp.public_documents"] = documents
    if settings["trusted_proxies"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings["trusted_proxies"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    with app.app_context():
        from idp.db import upgrade_database

        upgrade_database()
        with unit():
            keys.ensure((settings["tokens"]["default_signing_alg"],
                         settings["tokens"]["access_token_signing_alg"]))
        # Start-up work is done: close its connections so an app that is
        # built and dropped (CLI command discovery) leaves none open.
        db.session.remove()
        db.engine.dispose()
    _private_files(settings)
    return app


def _private_instance(path: Path) -> None:
    """The instance folder holds secrets, sessions and personal data: owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    store_file = path / "store.sqlite3"
    if not store_file.exists():
        os.close(os.open(store_file, os.O_WRONLY | os.O_CREAT, 0o600))


def _private_files(settings: Mapping[str, Any]) -> None:
    """SQLite files get owner-only permissions (SQLite gives its -wal and -shm
    files the permissions of the database file)."""
    url = settings["database_url"]
    if url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        if database.exists():
            database.chmod(0o600)


def _kept_in_process() -> tuple[str, ...]:
    """The store keys each worker keeps what it read of (the Redis store's
    ``kept``): those read on every request carrying a token and written
    rarely, each write waiting until every worker has dropped it."""
    from idp.accounts.snapshots import VERSION_KEY
    from idp.authorizations.service import (
        REVOKED_ACCOUNT_GRANTS,
        REVOKED_CLIENT_GRANTS,
        REVOKED_CONSENT,
        REVOKED_GRANT,
    )
    from idp.oidc.tokens import REVOKED_JTI

    return (REVOKED_JTI, REVOKED_GRANT, REVOKED_CLIENT_GRANTS, REVOKED_CONSENT,
            REVOKED_ACCOUNT_GRANTS, VERSION_KEY)


def _registries(settings: Mapping[str, Any]):
    from connectors.http import from_settings

    try:
        return from_settings(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _legacy_logins(settings: Mapping[str, Any]):
    from connectors.legacy_login import from_settings

    try:
        return from_settings(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _mailer(settings: Mapping[str, Any]):
    from connectors.mail import from_settings

    try:
        return from_settings(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _tune_sqlite(engine) -> None:
    """WAL lets readers run beside the one writer, and synchronous=NORMAL syncs
    at checkpoints instead of every commit: several worker processes then
    share the file without queueing on each commit's fsync. Checkpoints run
    in a thread of their own, never inside a request's commit
    (:mod:`idp.store.checkpoints`)."""
    from sqlalchemy import event

    from idp.db.writer_queue import WriterQueue
    from idp.store.checkpoints import NO_AUTOMATIC_CHECKPOINT, keep_checkpointed

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(NO_AUTOMATIC_CHECKPOINT)
        cursor.close()
        if engine.url.database and engine.url.database != ":memory:":
            keep_checkpointed(engine.url.database)

    if engine.url.database and engine.url.database != ":memory:":
        WriterQueue(engine.url.database, SQLITE_LOCK_TIMEOUT).install(engine)


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several worker threads and processes share the file: wait for locks
        # instead of failing at once.
        return {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}
