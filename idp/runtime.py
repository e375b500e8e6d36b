"""Per-application runtime objects (settings, store, hasher, keys) handed to services.

Services receive a :class:`Runtime` as an argument instead of reading Flask
globals, so protocol and account rules can be tested without a request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, g, has_app_context, has_request_context

if TYPE_CHECKING:
    from connectors.mail import MailGateway
    from connectors.registries import Registries
    from idp.accounts.passwords import PasswordHasher
    from idp.accounts.pii import PiiCipher
    from idp.accounts.snapshots import AccountCache
    from idp.audit.writer import AuditWriter
    from idp.authorizations.cache import GrantCache
    from idp.clients.cache import ClientCache
    from idp.oidc.acr import AcrPolicy
    from idp.oidc.keys import KeyRing
    from idp.single_logout.worker import LogoutWorker
    from idp.store import Store


@dataclass(frozen=True)
class Runtime:
    """What services need from the application.

    :ivar settings: the frozen settings tree (see ``config/default.toml``).
    :ivar store: ephemeral state backend.
    :ivar hasher: password hasher.
    :ivar keys: signing key ring.
    :ivar clients: client lookup cache.
    :ivar accounts: account snapshots of the token endpoints, by version.
    :ivar grants: grant facts of the token endpoints.
    :ivar token_hmac_key: 32-byte key for hashing secrets at rest.
    :ivar pairwise_key: 32-byte key of pairwise subject identifiers.
    :ivar audit: deferred writer for audit events on hot paths.
    :ivar pii: encryption and blind index of personal identifiers.
    :ivar acr: the assurance levels' ``acr`` values and authentication caps.
    :ivar registries: the registries and the SMS gateway, each None when not
        configured (all of them while ``gateway.url`` is empty).
    :ivar legacy_logins: department code -> its login check for lazy
        migration (connectors.legacy_login), from ``legacy_login.endpoints``.
    :ivar mail: the SMTP relay for outgoing e-mail, or None when ``mail.host``
        is not configured.
    :ivar logout: this process's single-logout worker
        (:class:`idp.single_logout.worker.LogoutWorker`), or None when
        ``logout.worker`` is off (tests that drive the queues themselves).
    """

    settings: Mapping[str, Any]
    store: Store
    hasher: PasswordHasher
    keys: KeyRing
    clients: ClientCache
    accounts: AccountCache
    grants: GrantCache
    token_hmac_key: bytes
    pairwise_key: bytes
    audit: AuditWriter
    pii: PiiCipher
    acr: AcrPolicy
    registries: Registries
    mail: MailGateway | None = None
    legacy_logins: dict = field(default_factory=dict)
    logout: LogoutWorker | None = None

    @property
    def issuer(self) -> str:
        """The issuer identifier (``iss``)."""
        return self.settings["issuer"]


def current_runtime() -> Runtime:
    """The :class:`Runtime` of the current Flask application (for views and CLI only)."""
    return current_app.extensions["idp"]


#: ``g`` attribute marking an application context pushed for one request.
_ONE_REQUEST = "idp_one_request"


@contextmanager
def one_request_context(app: Flask) -> Iterator[None]:
    """An application context for one HTTP request answered before Flask's
    routing (:mod:`idp.oidc.lanes`): what is memoised per request
    (:func:`serving_one_request`) is memoised in it as in a request context."""
    with app.app_context():
        setattr(g, _ONE_REQUEST, True)
        yield


def serving_one_request() -> bool:
    """Whether the caller works for one HTTP request: in Flask's request
    context, or in :func:`one_request_context`. Outside (CLI commands,
    background threads) nothing may be memoised for the context's life."""
    return has_request_context() or (has_app_context() and g.get(_ONE_REQUEST, False))
