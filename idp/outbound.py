"""HTTP calls the provider makes on its own to a relying party's server
(back-channel logout deliveries, CAS single logout, CAS proxy callbacks),
with a deadline on the **whole** call: a timeout per socket read (what
``requests`` offers) lets a server that drips one byte at a time hold the
caller for as long as it likes. Redirects are never followed, and at most
:data:`ANSWER_BYTES` of an answer are read (its status is what counts).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

#: Most bytes of an answer's body read.
ANSWER_BYTES = 4096


class OutboundError(Exception):
    """The call failed: no connection, a TLS failure, a broken answer, or
    the deadline passed. The message names the kind of failure only."""


def call(method: str, url: str, *, timeout: float, form: Mapping[str, str] | None = None,
         params: Mapping[str, str] | None = None) -> int:
    """Make one ``method`` request to ``url`` (``form`` as an
    ``application/x-www-form-urlencoded`` body, ``params`` added to the
    query) and return the answer's status code.

    :param timeout: seconds the whole call may take, from connecting to the
        end of the answer's head (the connection is cut then).
    :raises OutboundError: see the class.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context())
    elif parts.scheme == "http":
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        raise OutboundError("unsupported scheme")
    target = parts.path or "/"
    query = "&".join(filter(None, (parts.query, urlencode(params) if params else "")))
    if query:
        target += "?" + query
    body = urlencode(form) if form is not None else None
    headers = {"Cache-Control": "no-store", "Connection": "close"}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    cut = threading.Timer(timeout, _cut, (connection,))
    cut.daemon = True
    cut.start()
    try:
        connection.request(method, target, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read(ANSWER_BYTES)
        return answer.status
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise OutboundError("deadline passed" if not cut.is_alive() else
                            type(exc).__name__) from None
    finally:
        cut.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection) -> None:
    """Shut the socket of a call past its deadline, which ends any read
    waiting on it."""
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
