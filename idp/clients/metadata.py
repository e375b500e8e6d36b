"""A client's registration as one value, and the rules it must meet.

:class:`ClientMetadata` carries what an operator registers for a relying
party, under the names of OpenID Connect Dynamic Client Registration 1.0
§2 and RFC 7591 §2 where they have one, plus this provider's own
(``trusted``, ``min_acr``, ``kiosk``, ``strict_auth_method``,
``allowed_origins``, ``resource_server``). :func:`validate` checks every
registration rule and returns the value normalised, for a new client and
for a changed one alike (:mod:`idp.clients.service`). Nothing here reads the
database; only the pairwise sector rule reaches out, to fetch a
``sector_identifier_uri`` document.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import unquote, urlsplit

from authlib.oauth2.rfc6749 import scope_to_list

from idp.accounts.links import DEPARTMENT_CODE_RE
from idp.clients.sector import SectorError, fetch_redirect_uris
from idp.config import SIGNING_ALGS

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
#: Grant types of a client that names none.
DEFAULT_GRANT_TYPES = ("authorization_code", "refresh_token")
SUBJECT_TYPES = ("pairwise", "public")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
#: Methods that present the client secret; a client registered with one
#: accepts either unless registered with a strict method.
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
SCOPES = ("openid", "profile", "email", "phone", "offline_access", "realname", "idcard",
          "legacy")
#: Scopes a client may request unless registered otherwise: all but ``idcard``,
#: which releases the resident ID number and must be granted to a client
#: explicitly, and ``legacy``, which a department's client (``department``)
#: has by default and no other may have.
DEFAULT_SCOPES = tuple(s for s in SCOPES if s not in ("idcard", "legacy"))
#: ``id_token_signed_response_alg`` of a client that names none (OIDC Dynamic
#: Client Registration §2).
DEFAULT_ID_TOKEN_ALG = "RS256"
#: JWK members that hold private key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: Hosts for which plain http is allowed: loopback only (RFC 8252 §7.3, §8.3).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ClientError(Exception):
    """Invalid client registration data; the message says which value and why."""


@dataclass(frozen=True)
class ClientMetadata:
    """What is registered for one client. Lists may be given as any
    sequence and are kept as tuples; ``jwks`` is kept as given (not copied).

    :ivar client_name: name shown to users (RFC 7591 §2).
    :ivar redirect_uris: exact redirect URIs; required for ``authorization_code``.
    :ivar post_logout_redirect_uris: where RP-Initiated Logout (§3.1) may return.
    :ivar grant_types: empty for ``authorization_code`` and ``refresh_token``.
    :ivar token_endpoint_auth_method: one of :data:`AUTH_METHODS`; ``none`` is
        a public client (RFC 6749 §2.1), which must use PKCE.
    :ivar scope: the scopes the client may request, space separated; None
        for :data:`DEFAULT_SCOPES`.
    :ivar id_token_signed_response_alg: the ID tokens' algorithm; the caller
        of a registration makes sure a signing key for it exists
        (``KeyRing.ensure``).
    :ivar jwks: JWK Set of the client's public keys, for ``private_key_jwt``
        and the JWTs a kiosk signs.
    :ivar subject_type: ``pairwise`` (each sector sees its own ``sub``) or
        ``public`` (OIDC Core §8).
    :ivar sector_identifier_uri: https URL of a JSON array listing the
        redirect URIs; its host is the pairwise sector (OIDC Core §8.1).
    :ivar client_id: the identifier asked for; None for a random one.
    :ivar trusted: a first-party client: no consent screen.
    :ivar min_acr: lowest ``acr`` the client accepts; logins below it are
        stepped up.
    :ivar kiosk: a self-service kiosk that logs people in by the cards it
        reads (:mod:`idp.authn.kiosk`); it authenticates with ``private_key_jwt``.
    :ivar strict_auth_method: a client with a secret accepts only its
        registered method, not the other way of sending the secret.
    :ivar allowed_origins: origins of a browser app (:func:`check_origin`)
        that may call the token, userinfo, revocation and introspection
        endpoints (CORS).
    :ivar resource_server: the client may introspect access tokens issued
        to other clients (RFC 7662 §4).
    :ivar department: the code of the department whose legacy users the
        client serves: its users' legacy login names work at its login
        (aliases), and it receives ``legacy_ids`` under the ``legacy``
        scope, which it has by default.
    :ivar backchannel_logout_uri: where the provider POSTs a logout token
        when a session the client took part in ends (OpenID Connect
        Back-Channel Logout 1.0 §2.2).
    :ivar backchannel_logout_session_required: the client needs the ``sid``
        in logout tokens (and ID tokens).
    :ivar frontchannel_logout_uri: the page the provider's logout page loads
        in a hidden frame (OpenID Connect Front-Channel Logout 1.0 §2); its
        scheme, host and port are those of a redirect URI.
    :ivar frontchannel_logout_session_required: that page needs ``iss`` and
        ``sid`` in its query.
    :ivar cas_services: for a CAS service (CAS 3.0, :mod:`idp.cas`), the
        service URLs it logs in at: each an exact URL, or a prefix when it
        ends in ``/``; such a client has no redirect URI, grant or secret.
    :ivar cas_proxy_callbacks: the ``pgtUrl`` callbacks a CAS service may
        receive proxy-granting tickets at (exact https URLs; http on a
        loopback host).
    """

    client_name: str
    redirect_uris: Sequence[str] = ()
    post_logout_redirect_uris: Sequence[str] = ()
    grant_types: Sequence[str] = ()
    token_endpoint_auth_method: str = "client_secret_basic"
    scope: str | None = None
    id_token_signed_response_alg: str = DEFAULT_ID_TOKEN_ALG
    jwks: dict | None = field(default=None, hash=False)
    subject_type: str = "pairwise"
    sector_identifier_uri: str | None = None
    client_id: str | None = None
    trusted: bool = False
    min_acr: str | None = None
    kiosk: bool = False
    strict_auth_method: bool = False
    allowed_origins: Sequence[str] = ()
    resource_server: bool = False
    department: str | None = None
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    frontchannel_logout_uri: str | None = None
    frontchannel_logout_session_required: bool = False
    cas_services: Sequence[str] = ()
    cas_proxy_callbacks: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("redirect_uris", "post_logout_redirect_uris", "grant_types",
                     "allowed_origins", "cas_services", "cas_proxy_callbacks"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))

    @property
    def has_secret(self) -> bool:
        """Whether the client authenticates with a client secret."""
        return self.token_endpoint_auth_method in SECRET_AUTH_METHODS


def auth_method_for(public: bool, auth_method: str | None) -> str:
    """The ``token_endpoint_auth_method`` of the command line's ``--public``
    and ``--auth-method``: ``none`` for a public client, else the method
    named, else ``client_secret_basic`` (RFC 7591 §2's default).

    :raises ClientError: a public client named with a method other than ``none``.
    """
    method = auth_method or ("none" if public else "client_secret_basic")
    if public and method != "none":
        raise ClientError("a public client authenticates with method 'none'")
    return method


def validate(metadata: ClientMetadata, *, acr_values: Sequence[str] = (),
             fetch: Callable[[str], list[str]] | None = None) -> ClientMetadata:
    """Check every registration rule and return the metadata normalised:
    the name stripped, lists without repeats, default grant types and
    scope filled in, origins as browsers send them.

    :param acr_values: the configured assurance levels (``assurance.acr_values``);
        ``min_acr`` must be one of them.
    :param fetch: reads a ``sector_identifier_uri`` document
        (default :func:`fetch_sector_uris`).
    :raises ClientError: on the first rule broken, naming the value.
    """
    valid = checked(metadata, acr_values)
    sector_of(valid, fetch)
    return valid


def checked(metadata: ClientMetadata, acr_values: Sequence[str]) -> ClientMetadata:
    """:func:`validate` without the pairwise sector rule, which may fetch a
    document (see :func:`sector_of`): every other rule, and the normalised
    metadata.

    :raises ClientError: on the first rule broken.
    """
    name = (metadata.client_name or "").strip()
    if not name:
        raise ClientError("name must not be empty")
    if metadata.cas_services or metadata.cas_proxy_callbacks:
        return _checked_cas_service(replace(metadata, client_name=name), acr_values)
    grant_types = tuple(dict.fromkeys(metadata.grant_types or DEFAULT_GRANT_TYPES))
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise ClientError(f"grant type {grant!r} is not supported; use one of "
                              f"{', '.join(GRANT_TYPES)}")
    method = metadata.token_endpoint_auth_method
    if method not in AUTH_METHODS:
        raise ClientError(f"auth method {method!r} is not supported; use one of "
                          f"{', '.join(AUTH_METHODS)}")
    if method == "none" and "client_credentials" in grant_types:
        raise ClientError("a public client cannot use client_credentials")
    if metadata.strict_auth_method and method not in SECRET_AUTH_METHODS:
        raise ClientError(f"a strict authentication method applies to client_secret_basic "
                          f"and client_secret_post only (a {method} client has no other)")
    if metadata.resource_server and method == "none":
        raise ClientError("a resource server authenticates to the introspection endpoint: "
                          "it cannot be a public client")
    if method == "private_key_jwt":
        _check_jwks(metadata.jwks)
    elif metadata.jwks is not None:
        raise ClientError("public keys (jwks) are used only with private_key_jwt")
    if "authorization_code" in grant_types and not metadata.redirect_uris:
        raise ClientError("authorization_code needs at least one redirect URI")
    alg = metadata.id_token_signed_response_alg
    if alg not in SIGNING_ALGS:
        raise ClientError(f"algorithm {alg!r} is not supported; use one of "
                          f"{', '.join(SIGNING_ALGS)}")
    if metadata.kiosk and method != "private_key_jwt":
        raise ClientError("a kiosk authenticates with private_key_jwt (--auth-method "
                          "private_key_jwt --jwks FILE)")
    scopes, department = _checked_audience(metadata, acr_values)
    uris = tuple(_check_uri(u, "redirect URI") for u in dict.fromkeys(metadata.redirect_uris))
    origins = tuple(dict.fromkeys(check_origin(o) for o in metadata.allowed_origins))
    logout_uris = tuple(_check_uri(u, "post-logout redirect URI")
                        for u in dict.fromkeys(metadata.post_logout_redirect_uris))
    backchannel = _logout_uri(metadata.backchannel_logout_uri, "back-channel logout URI")
    frontchannel = _logout_uri(metadata.frontchannel_logout_uri, "front-channel logout URI")
    if frontchannel is not None and _origin(frontchannel) not in {_origin(u) for u in uris}:
        raise ClientError(f"front-channel logout URI {frontchannel!r} must have the scheme, "
                          "host and port of a redirect URI (Front-Channel Logout 1.0 §2)")
    if metadata.backchannel_logout_session_required and backchannel is None:
        raise ClientError("the back-channel logout session flag needs a back-channel logout "
                          "URI")
    if metadata.frontchannel_logout_session_required and frontchannel is None:
        raise ClientError("the front-channel logout session flag needs a front-channel "
                          "logout URI")
    return replace(metadata, client_name=name, grant_types=grant_types, redirect_uris=uris,
                   sector_identifier_uri=(metadata.sector_identifier_uri or None
                                          if metadata.subject_type == "pairwise" else None),
                   allowed_origins=origins,
                   post_logout_redirect_uris=logout_uris, scope=" ".join(scopes),
                   department=department, backchannel_logout_uri=backchannel,
                   frontchannel_logout_uri=frontchannel)


def _checked_audience(metadata: ClientMetadata,
                      acr_values: Sequence[str]) -> tuple[list[str], str | None]:
    """The rules of what any client (OpenID Connect or CAS) receives and
    demands: its scopes (the default ones when none are given, plus
    ``legacy`` for a department's), ``min_acr``, subject type, department.

    :returns: ``(scopes, department)``.
    :raises ClientError: on the first rule broken.
    """
    if metadata.min_acr is not None and metadata.min_acr not in acr_values:
        raise ClientError(f"minimum acr {metadata.min_acr!r} is not a level; use one of "
                          f"{', '.join(acr_values)}")
    if metadata.subject_type not in SUBJECT_TYPES:
        raise ClientError(f"subject type {metadata.subject_type!r} is not supported; use "
                          f"{' or '.join(SUBJECT_TYPES)}")
    scopes = scope_to_list(metadata.scope) if metadata.scope else list(DEFAULT_SCOPES)
    for item in scopes:
        if item not in SCOPES:
            raise ClientError(f"scope {item!r} is not supported; use some of {', '.join(SCOPES)}")
    department = metadata.department or None
    if department is not None and not DEPARTMENT_CODE_RE.fullmatch(department):
        raise ClientError(f"department {department!r} is not a department code (1 to 32 "
                          "letters, digits, dots, hyphens or underscores)")
    if department is not None and not metadata.scope:
        scopes.append("legacy")
    if "legacy" in scopes and department is None:
        raise ClientError("the scope legacy releases a department's legacy user ids: it "
                          "needs the client's department (--department CODE)")
    return scopes, department


def _checked_cas_service(metadata: ClientMetadata, acr_values: Sequence[str]) -> ClientMetadata:
    """The rules of a CAS service (:mod:`idp.cas`): service URLs (exact, or
    a prefix ending in ``/``; never a pattern), no OpenID Connect
    registration of its own (redirect URIs, grants, a secret, keys), the
    scopes that choose its attributes, consent, ``min_acr``, subject type
    and department as for any client."""
    if not metadata.cas_services:
        raise ClientError("a CAS service needs at least one service URL (--cas-service URL)")
    if metadata.token_endpoint_auth_method != "none":
        raise ClientError("a CAS service has no secret or keys: it validates tickets "
                          "without authenticating (register it without --auth-method)")
    for given, what in ((metadata.redirect_uris, "redirect URIs"),
                        (metadata.post_logout_redirect_uris, "post-logout redirect URIs"),
                        (metadata.grant_types, "grant types"),
                        (metadata.allowed_origins, "allowed origins"),
                        (metadata.jwks, "public keys"),
                        (metadata.backchannel_logout_uri, "a back-channel logout URI"),
                        (metadata.frontchannel_logout_uri, "a front-channel logout URI"),
                        (metadata.kiosk, "the kiosk flag"),
                        (metadata.resource_server, "the resource server flag")):
        if given:
            raise ClientError(f"a CAS service has no {what}: it logs in through /cas and "
                              "is told of logouts at its service URL")
    services = tuple(_cas_url(u, "CAS service URL") for u in dict.fromkeys(metadata.cas_services))
    callbacks = tuple(_cas_url(u, "CAS proxy callback URL")
                      for u in dict.fromkeys(metadata.cas_proxy_callbacks))
    scopes, department = _checked_audience(metadata, acr_values)
    return replace(metadata, grant_types=(), cas_services=services,
                   cas_proxy_callbacks=callbacks, scope=" ".join(scopes),
                   department=department, sector_identifier_uri=None)


def _cas_url(uri: str, kind: str) -> str:
    """A CAS service or proxy callback URL: an absolute https URL (http on
    a loopback host) without a fragment, user information, pattern or a
    dot segment (a prefix could otherwise be left by ``/../``)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http"):
        raise ClientError(f"{kind} {uri!r} must be an absolute https URL")
    if any(ord(character) < 0x21 or ord(character) == 0x7F for character in uri):
        raise ClientError(f"{kind} {uri!r} must not contain spaces or control characters")
    path = unquote(parts.path)
    if any(segment.split(";")[0] in (".", "..") for segment in path.split("/")) \
            or "\\" in uri:
        raise ClientError(f"{kind} {uri!r} must not contain a dot segment or a backslash")
    if _origin(uri)[2] is None:
        raise ClientError(f"{kind} {uri!r} has an invalid port")
    return _check_uri(uri, kind)


def _logout_uri(uri: str | None, kind: str) -> str | None:
    """A logout URI (Back-Channel Logout 1.0 §2.2, Front-Channel Logout 1.0
    §2): an absolute https URL (http for loopback hosts) without a
    fragment; None for none."""
    if not uri:
        return None
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http"):
        raise ClientError(f"{kind} {uri!r} must be an absolute https URL")
    if _origin(uri)[2] is None:
        raise ClientError(f"{kind} {uri!r} has an invalid port")
    return _check_uri(uri, kind)


def _origin(uri: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``uri``; the port None when it is not a valid one."""
    parts = urlsplit(uri)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def sector_of(metadata: ClientMetadata,
              fetch: Callable[[str], list[str]] | None = None) -> str | None:
    """The pairwise sector of metadata that passed :func:`checked`
    (:func:`sector_for`); None for public subjects.

    :raises ClientError: redirect URIs of several sectors without a
        sector_identifier_uri, or a document that does not list them all.
    """
    if metadata.subject_type != "pairwise":
        return None
    return sector_for(metadata.redirect_uris, metadata.sector_identifier_uri,
                      fetch or fetch_sector_uris)


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
    host of an http or https URI (``housing.example.gov.cn``); for any other
    scheme, the scheme itself. A private-use scheme (RFC 8252 §7.1) is
    handed by the operating system to the app that claimed it, whatever
    follows: ``cn.example.app://housing.example.gov.cn/cb`` goes to the app
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
