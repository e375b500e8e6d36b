"""The sandbox's SMTP receiver: a real SMTP server (aiosmtpd) on 127.0.0.1
that accepts every message and keeps it in the dataset's ``mails`` table
instead of delivering it, so tests and the demo can read the mail the
provider sent (``read_mail``, the signed ``GET /mail/v1/outbox`` and the
``/mail`` page of the sandbox gateway).

Like a relay it refuses recipients it could never deliver to: any address
in the ``.invalid`` top-level domain (RFC 2606 §2) gets ``550``, which
tests use to see how the provider handles a refused recipient. It can also
offer STARTTLS or implicit TLS and require a login, to test those modes of
the mail connector. For development, tests and the demo only.
"""

from __future__ import annotations

import logging
import sqlite3
import ssl
import time
import uuid
from collections.abc import Mapping
from email import policy
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from connectors.sandbox.dataset import connect

log = logging.getLogger(__name__)

#: Largest message accepted, bytes (a verification mail is about 1 KiB).
MAX_MESSAGE_SIZE = 1024 * 1024
#: The name the receiver gives in its greeting and EHLO answer.
SERVER_NAME = "sandbox-smtp.localhost"


def _refused_domain(address: str) -> bool:
    domain = address.rpartition("@")[2].lower().rstrip(".")
    return domain == "invalid" or domain.endswith(".invalid")


class _Outbox:
    """aiosmtpd handler: refuses ``.invalid`` recipients, stores the rest."""

    def __init__(self, data_path: str) -> None:
        self.data_path = data_path

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        if _refused_domain(address):
            return "550 5.1.2 No such domain (.invalid is never delivered, RFC 2606)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session,  # noqa: N802
                          envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(raw)
        body = message.get_body(preferencelist=("plain",))
        # Lines end in CRLF on the wire; kept as the sender wrote them.
        text = body.get_content().replace("\r\n", "\n") if body is not None else ""
        message_id = str(message.get("Message-ID") or f"<{uuid.uuid4().hex}@{SERVER_NAME}>")
        subject = str(message.get("Subject") or "")
        try:
            conn = connect(self.data_path)
            try:
                conn.executemany(
                    "INSERT INTO mails (message_id, mail_from, rcpt, subject, body, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [(message_id, envelope.mail_from or "", rcpt, subject, text, time.time())
                     for rcpt in envelope.rcpt_tos])
            finally:
                conn.close()
        except (sqlite3.Error, FileNotFoundError):
            log.exception("sandbox SMTP: could not store a message")
            return "451 4.3.0 Could not store the message; try again later"
        return "250 2.0.0 OK: queued as " + message_id.strip("<>")


class _Authenticator:
    """aiosmtpd authenticator checking LOGIN/PLAIN against fixed credentials."""

    def __init__(self, credentials: Mapping[str, str]) -> None:
        self._credentials = dict(credentials)

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        expected = self._credentials.get(login)
        ok = expected is not None and expected.encode() == auth_data.password
        return AuthResult(success=ok, handled=False)


class SandboxSmtp:
    """The SMTP receiver, served from a thread (:meth:`start`, :meth:`stop`).

    :param data_path: the dataset (``idp sandbox seed``) to store mail in.
    :param port: TCP port to listen on.
    :param host: address to bind; 127.0.0.1 (a sandbox is never exposed).
    :param tls_context: a server-side TLS context: STARTTLS is offered with it,
        or, with ``implicit_tls``, every connection starts with TLS.
    :param implicit_tls: TLS from the first byte (RFC 8314) instead of STARTTLS.
    :param credentials: login -> password; when given, a login (over TLS)
        is required before any mail is accepted.
    :raises FileNotFoundError: if the dataset does not exist or has an older layout.
    """

    def __init__(self, data_path: str, port: int, host: str = "127.0.0.1", *,
                 tls_context: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 credentials: Mapping[str, str] | None = None) -> None:
        connect(data_path).close()
        options: dict[str, Any] = {"data_size_limit": MAX_MESSAGE_SIZE, "timeout": 60}
        if tls_context is not None and not implicit_tls:
            options["tls_context"] = tls_context
        if credentials:
            options.update(authenticator=_Authenticator(credentials), auth_required=True,
                           auth_require_tls=True)
        self.host = host
        self.port = port
        self._controller = Controller(
            _Outbox(data_path), hostname=host, port=port, server_hostname=SERVER_NAME,
            ssl_context=tls_context if implicit_tls else None, **options)

    def start(self) -> None:
        """Listen (returns once the server answers).

        :raises OSError: the port cannot be bound.
        """
        try:
            self._controller.start()
        except OSError:
            self._controller.loop.close()
            raise

    def stop(self) -> None:
        """Stop listening and close the connections."""
        self._controller.stop()
