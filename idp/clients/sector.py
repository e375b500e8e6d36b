"""Fetching a pairwise client's ``sector_identifier_uri`` document (OIDC Core
§8.1) without letting the URL reach into the provider's own network.

The provider GETs a URL that a client's registrant names, from inside the
data centre: a server-side request forgery vector (OWASP ASVS 5.0 V1.3.6,
RFC 9700 §4.16 on requests to URLs clients choose). So:

- https only, on any port, with the certificate verified against the host name;
- every address the host name resolves to must be public: loopback, private,
  link-local, multicast, reserved, unspecified, shared (100.64/10) and the
  IPv6 forms that embed an IPv4 address (mapped, 6to4, NAT64) are refused;
- the connection goes to the address that was checked, so a second DNS
  answer (rebinding) cannot point it elsewhere;
- no redirects, a size limit, a per-read timeout and a deadline for the
  whole fetch, name resolution and TLS handshake included;
- one message for every failure to fetch: which port is closed, which host
  exists inside or which status a server answered is logged, never told.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: Seconds to connect, and to wait for each read.
READ_TIMEOUT = 5.0
#: Seconds the whole fetch may take (resolution, connection, TLS handshake,
#: answer), however slowly the resolver or the server answers.
FETCH_DEADLINE = 10.0
#: Largest document accepted, bytes (a JSON array of redirect URIs).
MAX_DOCUMENT_BYTES = 64 * 1024
#: The one answer for a document that cannot be fetched.
UNFETCHABLE = ("sector_identifier_uri cannot be fetched: it must be a public https URL "
               "answering 200 with a JSON array")
_EMBEDDING_IPV4 = (ipaddress.ip_network("2002::/16"),  # 6to4 (RFC 3056)
                   ipaddress.ip_network("64:ff9b::/96"),  # NAT64 (RFC 6052)
                   ipaddress.ip_network("64:ff9b:1::/48"))  # local NAT64 (RFC 8215)


class SectorError(Exception):
    """The document cannot be used; the message is safe to show."""


class FetchRefusedError(Exception):
    """A fetch was refused or failed; the message says why, for the log only."""


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is a public unicast address (IANA special-purpose
    registries, RFC 6890): an IPv4-mapped IPv6 address is judged as its
    IPv4 address, and 6to4 and NAT64 addresses, which route to an embedded
    IPv4 address, are refused."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if any(address in network for network in _EMBEDDING_IPV4):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local
        or address.is_multicast or address.is_reserved or address.is_unspecified)


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, each once, in resolver order.

    :raises FetchRefusedError: the name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchRefusedError(f"no address ({type(exc).__name__})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def public_address(host: str, port: int) -> str:
    """The address to connect to: the first of ``host``'s, all of which must
    be public (one private address is enough to refuse, as the resolver may
    hand out any of them next time).

    :raises FetchRefusedError: no address, or one that is not public.
    """
    addresses = resolve(host, port)
    if not addresses:
        raise FetchRefusedError("no address")
    for value in addresses:
        if not is_public_address(ipaddress.ip_address(value.split("%", 1)[0])):
            raise FetchRefusedError("a non-public address")
    return addresses[0]


def tls_context() -> ssl.SSLContext:
    """The TLS client context: system trust store, certificate and host name checked."""
    return ssl.create_default_context()


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``address`` (already checked), with SNI, certificate check and
    ``Host`` for the host name."""

    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=READ_TIMEOUT, context=context)
        self._address = address
        self._tls = context
        #: The TLS socket, from before its handshake, for :meth:`abort`
        #: (http.client drops ``sock`` once a response that closes the
        #: connection is read).
        self.tls_socket: ssl.SSLSocket | None = None
        self._aborted = False

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        try:
            # The handshake is made once the socket can be reached by
            # abort(): a server answering it a byte at a time would hold
            # wrap_socket() for as long as it liked.
            self.sock = self.tls_socket = self._tls.wrap_socket(
                raw, server_hostname=self.host, do_handshake_on_connect=False)
            if self._aborted:
                raise FetchRefusedError("the deadline")
            self.tls_socket.do_handshake()
        except BaseException:
            raw.close()
            if self.tls_socket is not None:
                self.tls_socket.close()
            raise

    def abort(self) -> None:
        """Cut the fetch, from another thread: shutting the socket down
        wakes a blocked handshake or read, and a connection not made yet
        is refused once it is (the flag is set before the socket is read,
        :meth:`connect` sets the socket before it reads the flag)."""
        self._aborted = True
        if self.tls_socket is not None:
            try:
                self.tls_socket.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass


def _read(connection: http.client.HTTPConnection, target: str) -> bytes:
    """GET ``target`` and return the body of a 200 answer.

    :raises FetchRefusedError: any other status, a compressed or too large body.
    :raises OSError, http.client.HTTPException: transport failures.
    """
    connection.request("GET", target, headers={
        "Accept": "application/json", "Accept-Encoding": "identity",
        "User-Agent": "idp-sector-fetch"})
    with connection.getresponse() as response:
        if response.status != 200:
            raise FetchRefusedError(f"HTTP status {response.status}")
        if (response.getheader("Content-Encoding") or "identity").lower() != "identity":
            raise FetchRefusedError("an encoded body")
        length = response.getheader("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > MAX_DOCUMENT_BYTES):
            raise FetchRefusedError("a body too large")
        body = bytearray()
        while chunk := response.read1(8192):
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise FetchRefusedError("a body too large")
    return bytes(body)


class _Fetch:
    """One fetch, run in a thread of its own so that its caller stops
    waiting at :data:`FETCH_DEADLINE` whatever the fetch is blocked in:
    name resolution (which no socket timeout bounds), the connection, the
    TLS handshake or a read of a server that trickles its bytes."""

    def __init__(self, host: str, port: int, target: str) -> None:
        self.host, self.port, self.target = host, port, target
        self.body: bytes | None = None
        self.error: Exception | None = None
        self.connection: _PinnedHTTPSConnection | None = None
        self.cancelled = False

    def run(self) -> None:
        try:
            address = public_address(self.host, self.port)
            if self.cancelled:
                return
            self.connection = _PinnedHTTPSConnection(self.host, self.port, address,
                                                     tls_context())
            if self.cancelled:
                return
            try:
                self.body = _read(self.connection, self.target)
            finally:
                self.connection.close()
        except Exception as exc:  # noqa: BLE001 -- handed to the caller's thread, which decides
            self.error = exc

    def cancel(self) -> None:
        """Stop the fetch after its deadline: its socket is shut down, so
        the thread ends soon; a fetch not connected yet does not connect."""
        self.cancelled = True
        if self.connection is not None:
            self.connection.abort()


def fetch_redirect_uris(uri: str) -> list[str]:
    """GET the ``sector_identifier_uri`` document, a JSON array of redirect
    URIs (OIDC Core §8.1), under the rules of this module; the whole fetch
    (name resolution, connection, TLS handshake, request and answer) takes
    at most :data:`FETCH_DEADLINE` seconds.

    :raises SectorError: not an https URL (:data:`UNFETCHABLE` for anything
        that fails to fetch), or a document that is not such an array.
    """
    parts = urlsplit(uri)
    try:
        port = parts.port or 443
    except ValueError:
        raise SectorError("sector_identifier_uri has an invalid port") from None
    if parts.scheme != "https" or not parts.hostname:
        raise SectorError("sector_identifier_uri must be an https URL")
    host = parts.hostname
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    fetch = _Fetch(host, port, target)
    worker = threading.Thread(target=fetch.run, name="sector-fetch", daemon=True)
    worker.start()
    worker.join(FETCH_DEADLINE)
    if worker.is_alive():
        fetch.cancel()
        reason = "the deadline"
    elif fetch.error is not None:
        exc = fetch.error
        reason = str(exc) if isinstance(exc, FetchRefusedError) else type(exc).__name__
    else:
        reason = None
    if reason is not None:
        log.warning("sector_identifier_uri on host %s not fetched: %s", host, reason)
        raise SectorError(UNFETCHABLE)
    try:
        value = json.loads(fetch.body)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SectorError("sector_identifier_uri must hold a JSON array of URIs")
    return value
