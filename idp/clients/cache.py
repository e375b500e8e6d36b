"""Client lookups for the protocol: an immutable view of a registered
client, cached per process and dropped in every process as soon as a change
to any client commits.

A change is published through the store as a new *generation* of the
clients (one random value under :data:`GENERATION_KEY`), and a process that
learns of another value than the one its entries were loaded under drops
them all. Client changes are rare and lookups are many, so one generation
for all clients costs less than a version per client.

How a process learns of it depends on the store. A store that broadcasts
(Redis, :class:`~idp.store.base.Broadcasting`) pushes each new generation
to every process, and the change command returns once every process has
applied it; a request then reads nothing. Otherwise, and whenever the
subscription is down, each request reads the generation (one store GET).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749 import ClientMixin, scope_to_list
from flask import g
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from idp.clients.metadata import SECRET_AUTH_METHODS
from idp.clients.models import Client
from idp.extensions import db
from idp.runtime import serving_one_request
from idp.security import constant_time_equals, keyed_hash, random_token
from idp.store import Store, StoreError
from idp.store.base import Broadcasting
from idp.timeutil import to_epoch

log = logging.getLogger(__name__)

SECRET_PURPOSE = "client_secret"
#: Store key of the clients' generation, rewritten after each committed change.
GENERATION_KEY = "clients:generation"
#: Lifetime of the generation entry, seconds: when it lapses every process
#: reloads its clients once, which is harmless.
GENERATION_TTL = 90 * 24 * 3600
#: ``Session.info`` key of the caches to tell when the session's transaction commits.
_PENDING = "idp.clients.changed"
#: ``flask.g`` attribute: this request already compared the generation.
_CHECKED = "_idp_clients_generation_checked"


@dataclass(frozen=True)
class ClientInfo(ClientMixin):
    """Immutable, cacheable view of a :class:`Client` for the protocol code
    (implements Authlib's ``ClientMixin``)."""

    client_id: str
    name: str
    secret_hash: str | None
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    token_endpoint_auth_method: str
    trusted: bool
    alg: str
    jwks: dict | None
    hmac_key: bytes = field(repr=False)
    subject_type: str = "public"
    sector_identifier: str | None = None
    min_acr: str | None = None
    kiosk: bool = False
    strict_auth_method: bool = False
    allowed_origins: tuple[str, ...] = ()
    resource_server: bool = False
    #: The department whose legacy users the client serves, or None.
    department: str | None = None
    #: OpenID Connect Back-Channel and Front-Channel Logout 1.0.
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    frontchannel_logout_uri: str | None = None
    frontchannel_logout_session_required: bool = False
    #: A CAS service's service URLs and proxy callbacks (:mod:`idp.cas`).
    cas_services: tuple[str, ...] = ()
    cas_proxy_callbacks: tuple[str, ...] = ()
    #: The secret before the last rotation, accepted until
    #: ``previous_secret_expires_at`` (Unix seconds).
    previous_secret_hash: str | None = field(default=None, repr=False)
    previous_secret_expires_at: float | None = None
    #: When this registration was made, whole Unix seconds: a client deleted
    #: and registered again under its ``client_id`` is a new registration,
    #: and the tokens of the old one are older than it.
    created_at: int = 0

    @property
    def is_public(self) -> bool:
        """Public clients (RFC 6749 §2.1) authenticate with ``none`` and must use PKCE."""
        return self.token_endpoint_auth_method == "none"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous single registration may be implied (OIDC Core §3.1.2.1
        # makes redirect_uri required anyway).
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        """The requested scopes this client may have, each once, in request order."""
        allowed = set(scope_to_list(self.scope))
        return " ".join(dict.fromkeys(s for s in scope_to_list(scope or "") if s in allowed))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string comparison with a registered URI (RFC 9700 §2.1,
        §4.1.3), except that a loopback IP literal redirect URI of a native
        app matches on any port (RFC 8252 §7.3 MUST): scheme, host, path and
        query still compare exactly, and ``localhost`` never gets this rule
        (RFC 8252 §8.3). Native apps are public clients (RFC 8252 §8.4), so
        only a public client gets the port's freedom; a client registered
        with a secret or keys is a web server that knows its port, and any
        other port on the machine may be another program's (RFC 9700 §2.1:
        exact matching but for the native app's port)."""
        if not isinstance(redirect_uri, str):
            return False
        if any(constant_time_equals(redirect_uri, uri) for uri in self.redirect_uris):
            return True
        if not self.is_public:
            return False
        portless = loopback_without_port(redirect_uri)
        return portless is not None and any(
            constant_time_equals(portless, loopback_without_port(uri) or "")
            for uri in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        """Constant-time comparison of keyed hashes of the presented secret
        with the client's secret, and during the grace period of its last
        rotation with the secret before it."""
        if not self.secret_hash or not isinstance(client_secret, str):
            return False
        presented = keyed_hash(self.hmac_key, client_secret, SECRET_PURPOSE)
        if constant_time_equals(presented, self.secret_hash):
            return True
        return (self.previous_secret_hash is not None
                and self.previous_secret_expires_at is not None
                and time.time() < self.previous_secret_expires_at
                and constant_time_equals(presented, self.previous_secret_hash))

    @property
    def accepted_auth_methods(self) -> tuple[str, ...]:
        """The client authentication methods this client may use, at every
        endpoint: its registered ``token_endpoint_auth_method`` (RFC 7591 §2);
        for a client registered with a secret, both ways of sending it
        (RFC 6749 §2.3.1) unless it was registered ``strict_auth_method``."""
        method = self.token_endpoint_auth_method
        if method in SECRET_AUTH_METHODS and not self.strict_auth_method:
            return SECRET_AUTH_METHODS
        return (method,)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Whether the client may authenticate with ``method``; the same
        registration holds at the token, revocation and introspection
        endpoints, so ``endpoint`` does not change the answer."""
        return method in self.accepted_auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def public_keys(self) -> list[dict]:
        """The client's registered asymmetric public JWKs (RFC 7517), for
        ``private_key_jwt`` assertions and the JWTs a kiosk signs."""
        return [k for k in (self.jwks or {}).get("keys", [])
                if isinstance(k, dict) and k.get("kty") in ("RSA", "EC", "OKP")]


#: A loopback IP literal http URI (RFC 8252 §7.3): host, optional port, and
#: the rest (path and query, no fragment).
_LOOPBACK_URI = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?([/?][^#]*)?\Z")


def loopback_without_port(uri: str) -> str | None:
    """``uri`` without its port if it is a loopback IP literal redirect URI
    (``http://127.0.0.1`` or ``http://[::1]``, RFC 8252 §7.3), else None.
    A port outside 1-65535 makes it no such URI."""
    match = _LOOPBACK_URI.match(uri)
    if match is None or (match[2] is not None and not 0 < int(match[2]) < 65536):
        return None
    return f"http://{match[1]}{match[3] or ''}"


def _to_info(row: Client, hmac_key: bytes) -> ClientInfo:
    expires = row.previous_secret_expires_at
    return ClientInfo(
        client_id=row.client_id, name=row.name, secret_hash=row.secret_hash,
        redirect_uris=tuple(row.redirect_uris or ()),
        post_logout_redirect_uris=tuple(row.post_logout_redirect_uris or ()),
        grant_types=tuple(row.grant_types or ()), scope=row.scope,
        token_endpoint_auth_method=row.token_endpoint_auth_method, trusted=row.trusted,
        alg=row.id_token_signed_response_alg, jwks=row.jwks, hmac_key=hmac_key,
        subject_type=row.subject_type, sector_identifier=row.sector_identifier,
        min_acr=row.min_acr, kiosk=row.kiosk, strict_auth_method=row.strict_auth_method,
        allowed_origins=tuple(row.allowed_origins or ()), resource_server=row.resource_server,
        department=row.department, backchannel_logout_uri=row.backchannel_logout_uri,
        backchannel_logout_session_required=row.backchannel_logout_session_required,
        frontchannel_logout_uri=row.frontchannel_logout_uri,
        frontchannel_logout_session_required=row.frontchannel_logout_session_required,
        cas_services=tuple(row.cas_services or ()),
        cas_proxy_callbacks=tuple(row.cas_proxy_callbacks or ()),
        previous_secret_hash=row.previous_secret_hash if expires else None,
        previous_secret_expires_at=float(to_epoch(expires)) if expires else None,
        created_at=to_epoch(row.created_at),
    )


class ClientCache:
    """Per-process cache of clients by ``client_id``, in step with every
    other process through the clients' generation in ``store``.

    A committed change (:meth:`changed` in the transaction) is seen by the
    next request of every process. Entries also live at most ``ttl``
    seconds, which bounds how long a process keeps a client when the store
    cannot be read or a row was changed outside :mod:`idp.clients.service`.

    With a broadcasting store the cache is also the store's
    :class:`~idp.store.base.Watcher` of :data:`GENERATION_KEY`, from the
    first lookup of each process on.

    :param hmac_key: key for client secret hashes.
    :param store: where the generation is kept.
    :param ttl: cache lifetime of an entry, seconds.
    """

    def __init__(self, hmac_key: bytes, store: Store, ttl: float = 30.0) -> None:
        self._hmac_key = hmac_key
        self._store = store
        self._ttl = ttl
        self._entries: dict[str, tuple[float, ClientInfo | None]] = {}
        self._origins: tuple[float, frozenset[str]] | None = None
        #: The generation the entries were loaded under; None before the
        #: first read, or while the store holds none.
        self._generation: str | None = None
        self._warned_at = -ttl
        self._lock = threading.Lock()
        #: Whether the store can push the generation (checked once: a
        #: Protocol's isinstance costs tens of microseconds).
        self._broadcasting = isinstance(store, Broadcasting)
        #: Until when (``time.monotonic()``) the store has confirmed that it
        #: pushes every new generation to this process (0 while it does not).
        self._confirmed_until = 0.0
        #: The process that watches the generation (a fork watches anew).
        self._watcher_pid: int | None = None

    def get(self, client_id: str) -> ClientInfo | None:
        """Return the client or None if unknown."""
        if not isinstance(client_id, str) or len(client_id) > 64 or "\x00" in client_id:
            return None
        generation = self._follow_store()
        now = time.monotonic()
        hit = self._entries.get(client_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        row = db.session.scalar(select(Client).where(Client.client_id == client_id))
        info = _to_info(row, self._hmac_key) if row else None
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            # Loaded under a generation that has since moved on: it may be
            # the row from before the change, so it is not kept.
            if self._generation == generation:
                self._entries[client_id] = (now, info)
        return info

    def allowed_origins(self) -> frozenset[str]:
        """Every origin some client registered as allowed: a CORS preflight
        names no client, so it is answered for an origin of any client (the
        request that follows is then checked against its own client)."""
        generation = self._follow_store()
        now = time.monotonic()
        hit = self._origins
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        origins = frozenset(origin for row in db.session.scalars(select(Client.allowed_origins))
                            for origin in row or ())
        with self._lock:
            if self._generation == generation:
                self._origins = (now, origins)
        return origins

    def invalidate(self, client_id: str) -> None:
        """Drop ``client_id`` (and the set of allowed origins, which it may
        have changed) from this process's cache."""
        with self._lock:
            self._entries.pop(client_id, None)
            self._origins = None

    def changed(self, session: Session, client_id: str) -> None:
        """Record that ``session``'s transaction changes ``client_id``: this
        process forgets the client now, and every process once the
        transaction commits (:meth:`publish`); a rollback publishes nothing.
        Publishing only after the commit keeps another process from
        reloading the old row under the new generation."""
        self.invalidate(client_id)
        session.info.setdefault(_PENDING, set()).add(self)

    def publish(self) -> None:
        """Write a new generation to the store, so that every process drops
        its entries at its next lookup; this process drops them now.

        :raises StoreError: the store cannot be written (other processes
            then see the change within ``ttl``).
        """
        generation = random_token(12)
        with self._lock:
            self._entries.clear()
            self._origins = None
            self._generation = generation
        if not self._broadcasting:
            self._store.put(GENERATION_KEY, {"generation": generation}, GENERATION_TTL)
        elif not self._store.publish(GENERATION_KEY, {"generation": generation},
                                     GENERATION_TTL):
            log.warning("a client change is published but some process did not confirm it "
                        "in time; it applies there at its next message or within %s s",
                        self._ttl)

    def watching(self, value: dict | None) -> None:
        """The store pushes the generation from now on; ``value`` is the
        one it holds (:class:`~idp.store.base.Watcher`); it is relied on
        once :meth:`confirmed`."""
        self._compare(value)

    def published(self, value: dict) -> None:
        """Another generation was published (:class:`~idp.store.base.Watcher`)."""
        self._compare(value)

    def confirmed(self, until: float) -> None:
        """Every generation published so far has been told; lookups rely on
        that until ``until`` (:class:`~idp.store.base.Watcher`)."""
        self._confirmed_until = until

    def lost(self) -> None:
        """The store no longer pushes: requests read the generation again
        (:class:`~idp.store.base.Watcher`)."""
        self._confirmed_until = 0.0

    def unchecked_generation_key(self) -> str | None:
        """:data:`GENERATION_KEY` while the current request has not compared
        the generation yet, else None: a caller that reads other store keys
        anyway reads it with them and hands the value to :meth:`follow`,
        saving a round trip."""
        if self._is_pushed() or (serving_one_request() and g.get(_CHECKED)):
            return None
        return GENERATION_KEY

    def follow(self, value: dict | None) -> None:
        """Compare the generation value a caller read under
        :meth:`unchecked_generation_key` (None for no entry) and drop every
        entry if it moved on; the current request then reads it no more."""
        if serving_one_request():
            setattr(g, _CHECKED, True)
        self._compare(value)

    def _follow_store(self) -> str | None:
        """Drop every entry if the store's generation is not the one they
        were loaded under (read once per request; on every call outside a
        request). A store that cannot be read leaves the entries to their ttl.

        :returns: the generation the caller's loads belong to.
        """
        if self._is_pushed():
            return self._generation
        if serving_one_request():
            if g.get(_CHECKED):
                return self._generation
            setattr(g, _CHECKED, True)
        try:
            value = self._store.get(GENERATION_KEY)
        except StoreError as exc:
            now = time.monotonic()
            if now - self._warned_at >= self._ttl:  # once per ttl, not on every request
                self._warned_at = now
                log.warning("the clients' generation cannot be read from the store; cached "
                            "clients are kept up to %s s: %s", self._ttl, exc)
            return self._generation
        return self._compare(value)

    def _is_pushed(self) -> bool:
        """Whether the store pushes the generation to this process and has
        confirmed lately that nothing was missed (a subscription broken
        without a word stops being relied on within the store's trust, half
        a second for Redis); the first call in a process starts watching."""
        if self._broadcasting and self._watcher_pid != os.getpid():
            with self._lock:
                if self._watcher_pid != os.getpid():
                    self._watcher_pid = os.getpid()
                    self._confirmed_until = 0.0
                    self._store.watch(GENERATION_KEY, self)
        return time.monotonic() < self._confirmed_until

    def _compare(self, value: dict | None) -> str | None:
        generation = value.get("generation") if isinstance(value, dict) else None
        if generation != self._generation:
            with self._lock:
                self._entries.clear()
                self._origins = None
                self._generation = generation
        return generation


@event.listens_for(Session, "after_commit")
def _publish_changes(session: Session) -> None:
    for cache in session.info.pop(_PENDING, ()):
        try:
            cache.publish()
        except StoreError as exc:
            # The transaction is over: raising here would leave the session
            # unusable. Other processes see the change within the cache's ttl.
            log.warning("a client change is committed but the store could not be told; "
                        "other processes see it within their cache lifetime: %s", exc)


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop(_PENDING, None)
