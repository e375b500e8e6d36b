"""Client registration rules and a per-process lookup cache."""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, scope_to_list
from sqlalchemy import select

from idp.audit.service import record
from idp.clients.models import Client
from idp.clients.sector import SectorError, fetch_redirect_uris
from idp.config import SIGNING_ALGS
from idp.extensions import db
from idp.security import constant_time_equals, keyed_hash, random_token

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SUBJECT_TYPES = ("pairwise", "public")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
#: Methods that present the client secret; a client registered with one
#: accepts either unless registered with a strict method.
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
SCOPES = ("openid", "profile", "email", "phone", "offline_access", "realname", "idcard")
#: Scopes a client may request unless registered otherwise: all but ``idcard``,
#: which releases the resident ID number and must be granted to a client explicitly.
DEFAULT_SCOPES = tuple(s for s in SCOPES if s != "idcard")
SECRET_PURPOSE = "client_secret"
#: ``id_token_signed_response_alg`` of a client that names none (OIDC Dynamic
#: Client Registration §2).
DEFAULT_ID_TOKEN_ALG = "RS256"


class ClientError(Exception):
    """Invalid client registration data; the message says which value and why."""


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
        """Constant-time comparison of keyed hashes of the presented secret."""
        if not self.secret_hash or not isinstance(client_secret, str):
            return False
        return constant_time_equals(
            keyed_hash(self.hmac_key, client_secret, SECRET_PURPOSE), self.secret_hash
        )

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
    )


class ClientCache:
    """Per-process cache of clients by ``client_id``.

    Entries live ``ttl`` seconds, so a change made by another process is seen
    within that time; changes made through this process invalidate at once.

    :param hmac_key: key for client secret hashes.
    :param ttl: cache lifetime of an entry, seconds.
    """

    def __init__(self, hmac_key: bytes, ttl: float = 30.0) -> None:
        self._hmac_key = hmac_key
        self._ttl = ttl
        self._entries: dict[str, tuple[float, ClientInfo | None]] = {}
        self._origins: tuple[float, frozenset[str]] | None = None
        self._lock = threading.Lock()

    def get(self, client_id: str) -> ClientInfo | None:
        """Return the client or None if unknown."""
        if not isinstance(client_id, str) or len(client_id) > 64 or "\x00" in client_id:
            return None
        now = time.monotonic()
        hit = self._entries.get(client_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        row = db.session.scalar(select(Client).where(Client.client_id == client_id))
        info = _to_info(row, self._hmac_key) if row else None
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[client_id] = (now, info)
        return info

    def allowed_origins(self) -> frozenset[str]:
        """Every origin some client registered as allowed: a CORS preflight
        names no client, so it is answered for an origin of any client (the
        request that follows is then checked against its own client)."""
        now = time.monotonic()
        hit = self._origins
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        origins = frozenset(origin for row in db.session.scalars(select(Client.allowed_origins))
                            for origin in row or ())
        with self._lock:
            self._origins = (now, origins)
        return origins

    def invalidate(self, client_id: str) -> None:
        """Drop ``client_id`` (and the set of allowed origins, which it may
        have changed) from this process's cache."""
        with self._lock:
            self._entries.pop(client_id, None)
            self._origins = None


#: JWK members that hold private key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _check_jwks(jwks: dict | None) -> None:
    """A JWK Set of asymmetric public keys, with no private members."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not keys or not isinstance(keys, list):
        raise ClientError("private_key_jwt needs the client's public keys (a JWK Set)")
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP"):
            raise ClientError("each key must be an RSA, EC or OKP public JWK")
        if PRIVATE_JWK_MEMBERS & set(key):
            raise ClientError("the JWK Set contains private key material: register only "
                              "the public keys")


#: Hosts for which plain http is allowed: loopback only (RFC 8252 §7.3, §8.3).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_origin(origin: str) -> str:
    """A browser app's origin as browsers send it in ``Origin`` (RFC 6454
    §6.2): ``scheme://host[:port]`` with no path, https or (for a loopback
    host) http, in lower case and without the scheme's default port.

    :returns: the origin in that serialisation.
    :raises ClientError: if ``origin`` is not such an origin.
    """
    if not isinstance(origin, str) or not origin.isascii() or not origin.isprintable() \
            or " " in origin:
        raise ClientError(f"allowed origin {origin!r} must be ASCII without spaces (write an "
                          "internationalised host name in punycode)")
    if "*" in origin:
        raise ClientError(f"allowed origin {origin!r}: wildcards are not allowed")
    parts = urlsplit(origin)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClientError(f"allowed origin {origin!r} must look like https://app.example.gov.cn")
    if parts.path or parts.query or parts.fragment or "?" in origin or "#" in origin:
        raise ClientError(f"allowed origin {origin!r} must have no path (not even /), query "
                          "or fragment")
    if parts.username is not None or parts.password is not None:
        raise ClientError(f"allowed origin {origin!r} must not contain user information")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ClientError(f"allowed origin {origin!r} has an invalid port")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ClientError(f"allowed origin {origin!r}: plain http is allowed only for loopback "
                          "hosts")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _check_uri(uri: str, kind: str) -> str:
    parts = urlsplit(uri)
    if not parts.scheme:
        raise ClientError(f"{kind} {uri!r} must be an absolute https URL (or a private-use scheme)")
    if parts.scheme not in ("https", "http") and "." not in parts.scheme:
        raise ClientError(f"{kind} {uri!r}: a private-use URI scheme must contain a dot, a "
                          f"reverse domain name the app's owner controls, such as "
                          f"com.example.app:/callback (RFC 8252 §7.1)")
    if parts.scheme in ("https", "http") and not parts.netloc:
        raise ClientError(f"{kind} {uri!r} has no host")
    if "*" in uri:
        raise ClientError(f"{kind} {uri!r}: wildcards are not allowed (exact matching)")
    if parts.username is not None or parts.password is not None:
        raise ClientError(f"{kind} {uri!r} must not contain user information")
    if parts.fragment or "#" in uri:
        raise ClientError(f"{kind} {uri!r} must not contain a fragment (RFC 6749 §3.1.2)")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ClientError(f"{kind} {uri!r}: plain http is allowed only for loopback hosts")
    return uri


def fetch_sector_uris(uri: str) -> list[str]:
    """GET a ``sector_identifier_uri`` document: a JSON array of redirect
    URIs (OIDC Core §8.1), over https from a public address only, without
    redirects, within size and time limits (:mod:`idp.clients.sector`).

    :raises ClientError: if it cannot be fetched (one message, naming no
        port or internal detail) or is not such an array.
    """
    try:
        return fetch_redirect_uris(uri)
    except SectorError as exc:
        raise ClientError(str(exc)) from None


def redirect_destination(uri: str) -> str | None:
    """Who receives what is sent to ``uri``, for people and for sectors: the
    host of an http or https URI (``portal.example.gov.cn``); for any other
    scheme, the scheme itself. A private-use scheme (RFC 8252 §7.1) is
    handed by the operating system to the app that claimed it, whatever
    follows: ``cn.example.app://portal.example.gov.cn/cb`` goes to the app
    ``cn.example.app``, and the "host" after it names nobody.

    :returns: a lower-case host name or scheme, or None for a URI with neither.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return parts.hostname or None
    return scheme or None


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names the user's own machine: ``localhost`` and the
    names under it (RFC 6761 §6.3), or a loopback IP literal (127.0.0.0/8,
    ``::1``, an IPv4-mapped loopback address)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _redirect_sector(uri: str) -> str | None:
    """The sector one redirect URI gives (see :func:`sector_for`); None for
    a URI that gives the client a sector of its own."""
    destination = redirect_destination(uri)
    if destination is None:
        return None
    if urlsplit(uri).scheme.lower() not in ("http", "https"):
        # Written as in the URI, "scheme:", so that it is never equal to a
        # host name: the scheme com.example.app (the owner of example.com)
        # and the host com.example.app (a name under .app) are two owners.
        return f"{destination}:"
    return None if is_loopback_host(destination) else destination


def sector_for(redirect_uris: Sequence[str], sector_identifier_uri: str | None,
               fetch=fetch_sector_uris) -> str | None:
    """The sector of a pairwise client (OIDC Core §8.1, §17.3): the host of
    its ``sector_identifier_uri``, whose document must list every redirect
    URI; else the one host of its redirect URIs. Two kinds of native app
    redirect URI (RFC 8252 §7) name no owner and share no sector with
    anyone: a loopback host (every native app may listen on
    ``http://127.0.0.1``) gives the client a sector of its own, and a
    private-use scheme gives the sector ``scheme:``, never the "host"
    written after it. Clients are grouped into one sector only by a host
    or scheme their owner controls, or by a ``sector_identifier_uri``.

    Applies at registration: a client keeps the sector it was registered
    with, since a new one would change the ``sub`` its users have.

    :returns: the sector, or None for a sector of the client's own (its
        ``client_id``, :func:`idp.oidc.subjects.subject_for`).
    :raises ClientError: redirect URIs of several sectors without a
        sector_identifier_uri, or a document that does not list them all.
    """
    if sector_identifier_uri:
        if urlsplit(sector_identifier_uri).scheme != "https":
            raise ClientError("sector_identifier_uri must be an https URL")
        uri = _check_uri(sector_identifier_uri, "sector_identifier_uri")
        listed = set(fetch(uri))
        missing = [u for u in redirect_uris if u not in listed]
        if missing:
            raise ClientError(f"sector_identifier_uri does not list the redirect URI "
                              f"{missing[0]!r}")
        return urlsplit(uri).hostname
    sectors = {_redirect_sector(u) for u in redirect_uris}
    if len(sectors) > 1:
        raise ClientError("redirect URIs on several hosts (a loopback host and a private-use "
                          "scheme count as hosts of their own) need a sector_identifier_uri "
                          "for pairwise subjects (OIDC Core §8.1), or use --subject-type "
                          "public")
    return sectors.pop() if sectors else None


def create_client(
    name: str,
    redirect_uris: list[str],
    hmac_key: bytes,
    *,
    post_logout_redirect_uris: list[str] | None = None,
    public: bool = False,
    trusted: bool = False,
    grant_types: list[str] | None = None,
    auth_method: str | None = None,
    scope: str | None = None,
    alg: str = DEFAULT_ID_TOKEN_ALG,
    jwks: dict | None = None,
    client_id: str | None = None,
    actor: str = "cli",
    min_acr: str | None = None,
    acr_values: Sequence[str] = (),
    subject_type: str = "pairwise",
    sector_identifier_uri: str | None = None,
    fetch=fetch_sector_uris,
    kiosk: bool = False,
    strict_auth_method: bool = False,
    resource_server: bool = False,
    allowed_origins: Sequence[str] = (),
) -> tuple[Client, str | None]:
    """Register a client and commit.

    :param redirect_uris: exact redirect URIs; required for authorization_code.
    :param public: a public client (``token_endpoint_auth_method=none``, PKCE required).
    :param auth_method: one of ``AUTH_METHODS``; default ``client_secret_basic``
        (``none`` for public clients).
    :param alg: the ID tokens' ``id_token_signed_response_alg``; the caller
        makes sure a signing key for it exists (``KeyRing.ensure``).
    :param jwks: JWK Set of the client's public keys, required for ``private_key_jwt``.
    :param min_acr: lowest ``acr`` the client accepts; must be one of ``acr_values``
        (the configured levels). Logins below it are stepped up.
    :param subject_type: ``pairwise`` (default: each sector sees its own
        ``sub``) or ``public`` (OIDC Core §8).
    :param sector_identifier_uri: https URL of a JSON array listing the
        redirect URIs, fetched with ``fetch``; its host is the pairwise sector.
    :param kiosk: a self-service kiosk that logs people in by the cards it
        reads (idp.authn.kiosk); it must authenticate with ``private_key_jwt``.
    :param strict_auth_method: a client with a secret accepts only ``auth_method``
        itself, not the other way of sending the secret.
    :param resource_server: the client may introspect access tokens issued
        to other clients (RFC 7662 §4); it must authenticate (not public).
    :param allowed_origins: origins of the browser app (see :func:`check_origin`)
        that may call the token, userinfo, revocation and introspection
        endpoints (CORS).
    :returns: ``(client, secret)``; ``secret`` is the clear client secret (256
        bits), shown once and stored only as an HMAC, or None when the client
        authenticates without one.
    :raises ClientError: on any invalid value.
    """
    name = (name or "").strip()
    if not name:
        raise ClientError("name must not be empty")
    grant_types = list(dict.fromkeys(grant_types or ["authorization_code", "refresh_token"]))
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise ClientError(f"grant type {grant!r} is not supported; use one of "
                              f"{', '.join(GRANT_TYPES)}")
    method = auth_method or ("none" if public else "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ClientError(f"auth method {method!r} is not supported; use one of "
                          f"{', '.join(AUTH_METHODS)}")
    if public and method != "none":
        raise ClientError("a public client authenticates with method 'none'")
    if method == "none" and "client_credentials" in grant_types:
        raise ClientError("a public client cannot use client_credentials")
    if strict_auth_method and method not in SECRET_AUTH_METHODS:
        raise ClientError(f"a strict authentication method applies to client_secret_basic "
                          f"and client_secret_post only (a {method} client has no other)")
    if resource_server and method == "none":
        raise ClientError("a resource server authenticates to the introspection endpoint: "
                          "it cannot be a public client")
    if method == "private_key_jwt":
        _check_jwks(jwks)
    elif jwks is not None:
        raise ClientError("public keys (jwks) are used only with private_key_jwt")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientError("authorization_code needs at least one redirect URI")
    if alg not in SIGNING_ALGS:
        raise ClientError(f"algorithm {alg!r} is not supported; use one of "
                          f"{', '.join(SIGNING_ALGS)}")
    if min_acr is not None and min_acr not in acr_values:
        raise ClientError(f"minimum acr {min_acr!r} is not a level; use one of "
                          f"{', '.join(acr_values)}")
    if kiosk and method != "private_key_jwt":
        raise ClientError("a kiosk authenticates with private_key_jwt (--auth-method "
                          "private_key_jwt --jwks FILE)")
    if subject_type not in SUBJECT_TYPES:
        raise ClientError(f"subject type {subject_type!r} is not supported; use "
                          f"{' or '.join(SUBJECT_TYPES)}")
    uris = [_check_uri(u, "redirect URI") for u in dict.fromkeys(redirect_uris)]
    sector = sector_for(uris, sector_identifier_uri, fetch) if subject_type == "pairwise" \
        else None
    origins = list(dict.fromkeys(check_origin(o) for o in allowed_origins))
    logout_uris = [_check_uri(u, "post-logout redirect URI")
                   for u in dict.fromkeys(post_logout_redirect_uris or [])]
    requested_scope = scope_to_list(scope) if scope else list(DEFAULT_SCOPES)
    for item in requested_scope:
        if item not in SCOPES:
            raise ClientError(f"scope {item!r} is not supported; use some of {', '.join(SCOPES)}")
    client_id = client_id or random_token(16)
    if db.session.scalar(select(Client).where(Client.client_id == client_id)):
        raise ClientError(f"client_id {client_id!r} already exists")
    secret = random_token(32) if method in ("client_secret_basic", "client_secret_post") else None
    row = Client(
        client_id=client_id, name=name,
        secret_hash=keyed_hash(hmac_key, secret, SECRET_PURPOSE) if secret else None,
        redirect_uris=uris, post_logout_redirect_uris=logout_uris, grant_types=grant_types,
        scope=" ".join(requested_scope), token_endpoint_auth_method=method, trusted=trusted,
        id_token_signed_response_alg=alg, jwks=jwks, min_acr=min_acr,
        subject_type=subject_type, sector_identifier=sector, kiosk=kiosk,
        sector_identifier_uri=sector_identifier_uri if subject_type == "pairwise" else None,
        strict_auth_method=strict_auth_method, resource_server=resource_server,
        allowed_origins=origins,
    )
    db.session.add(row)
    record("client.created", client_id=client_id, actor=actor, name=name,
           redirect_uris=uris, grant_types=grant_types, auth_method=method,
           strict_auth_method=strict_auth_method, resource_server=resource_server,
           allowed_origins=origins)
    db.session.commit()
    return row, secret


def list_clients() -> list[Client]:
    """All registered clients, oldest first."""
    return list(db.session.scalars(select(Client).order_by(Client.id)))
