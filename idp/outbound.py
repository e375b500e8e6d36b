"""HTTP calls the provider makes on its own to a relying party's server
(back-channel logout deliveries, CAS single logout, CAS proxy callbacks),
with a deadline on the **whole** call: a timeout per socket read (what
``requests`` offers) lets a server that drips one byte at a time hold the
caller for as long as it likes, and so do slow name resolution and a
host's first address dropping packets. Redirects are never followed, and
only the answer's head is read (its status is what counts).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit


class OutboundError(Exception):
    """The call failed: no connection, a TLS failure, a broken answer, or
    the deadline passed. The message names the kind of failure only."""


def call(method: str, url: str, *, timeout: float, form: Mapping[str, str] | None = None,
         params: Mapping[str, str] | None = None) -> int:
    """Make one ``method`` request to ``url`` (``form`` as an
    ``application/x-www-form-urlencoded`` body, ``params`` added to the
    query) and return the answer's status code, read from its head (the
    body is not waited for).

    The call runs in a thread of its own, which the caller waits for
    ``timeout`` seconds at most, whatever the phase: name resolution, a
    connection to each of the host's addresses, the request, the answer's
    head. Past the deadline the call's socket is shut as soon as it exists,
    so the abandoned thread ends too (within a connection attempt's
    ``timeout``).

    :param timeout: seconds the whole call may take.
    :raises OutboundError: see the class.
    """
    outcome: dict[str, object] = {}
    finished = threading.Event()
    call_ = _Call(method, url, timeout, form, params)

    def run() -> None:
        try:
            outcome["status"] = call_.run()
        except OutboundError as exc:
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=run, name="outbound-call", daemon=True).start()
    if not finished.wait(timeout):
        call_.expire()
        raise OutboundError("deadline passed")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["status"]  # type: ignore[return-value]


class _Call:
    """One request on its own connection, which :meth:`expire` cuts: now if
    its socket exists, else the moment it does (checked every
    :data:`_CUT_RETRY` seconds until the call ends)."""

    def __init__(self, method: str, url: str, timeout: float,
                 form: Mapping[str, str] | None, params: Mapping[str, str] | None) -> None:
        parts = urlsplit(url)
        if parts.scheme == "https":
            self.connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=timeout,
                context=ssl.create_default_context())
        elif parts.scheme == "http":
            self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                         timeout=timeout)
        else:
            raise OutboundError("unsupported scheme")
        self.method = method
        self.target = parts.path or "/"
        query = "&".join(filter(None, (parts.query, urlencode(params) if params else "")))
        if query:
            self.target += "?" + query
        self.body = urlencode(form) if form is not None else None
        self.expired = False
        self.ended = False

    def run(self) -> int:
        headers = {"Cache-Control": "no-store", "Connection": "close"}
        if self.body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(self.method, self.target, body=self.body, headers=headers)
            return self.connection.getresponse().status
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise OutboundError("deadline passed" if self.expired
                                else type(exc).__name__) from None
        finally:
            self.ended = True
            self.connection.close()

    def expire(self) -> None:
        self.expired = True
        sock = self.connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif not self.ended:
            retry = threading.Timer(_CUT_RETRY, self.expire)
            retry.daemon = True
            retry.start()


#: Seconds between two looks for the socket of an expired call that had none.
_CUT_RETRY = 0.05
