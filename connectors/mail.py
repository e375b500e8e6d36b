"""The mail gateway interface and its SMTP implementation (``docs/connectors.md``).

:class:`SmtpMailer` sends plain-text UTF-8 messages through an SMTP relay
with the standard library's :mod:`smtplib`: STARTTLS (RFC 3207) or implicit
TLS (RFC 8314) with the certificate and host name verified, an optional
login, a timeout on every network operation, and no retries (a retry after
a lost answer could deliver a message twice; the caller's limits decide
whether the user may ask again). It connects for each message: mail is
rare here (a verification link, a notice), and a kept connection would
meet the relay's idle timeout anyway.

Nothing here logs or raises an address: errors name the relay and what
failed (connection, TLS, login, a refused recipient, with the SMTP code).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from ipaddress import ip_address
from typing import Any, Protocol

#: ``security`` values: upgrade a plain connection (RFC 3207, port 587),
#: TLS from the first byte (RFC 8314 §3.3, port 465), or none at all.
SECURITY_MODES = ("starttls", "tls", "none")


class MailGatewayError(Exception):
    """The relay could not be reached or refused the message; it was not sent
    (or, after a timeout while the relay was answering, may have been)."""


class MailGateway(Protocol):
    """Sends plain-text e-mail."""

    def send(self, to: str, subject: str, text: str) -> str:
        """Send ``text`` with ``subject`` to the address ``to``.

        :returns: the message's ``Message-ID`` (``<...@...>``), kept for the
            audit trail.
        :raises ValueError: ``to`` or ``subject`` is not a single header line
            (a line break would inject headers).
        :raises MailGatewayError: the message was not accepted.
        """


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SmtpMailer:
    """A :class:`MailGateway` over SMTP; one instance per process, shared by threads.

    :param host: the relay's host name (verified against its certificate).
    :param port: TCP port (587 for STARTTLS, 465 for implicit TLS).
    :param from_address: the sender, ``From`` and envelope sender.
    :param security: one of :data:`SECURITY_MODES`; with ``starttls`` a relay
        that does not offer STARTTLS is an error, never a plain fallback.
    :param username: login name (AUTH, only ever over TLS); empty for none.
    :param password: its password.
    :param timeout: seconds for connecting and for each answer of the relay.
    :param ca_file: PEM file of the certificate authorities to trust instead
        of the system's (a relay with an internal CA); empty for the system's.
    :param local_hostname: the name given in EHLO (default: this host's FQDN,
        looked up once here rather than for every message).
    :raises ValueError: an unknown ``security``, a login without TLS, or an
        empty host or sender.
    """

    def __init__(self, host: str, port: int, from_address: str, *,
                 security: str = "starttls", username: str = "", password: str = "",
                 timeout: float = 10.0, ca_file: str = "",
                 local_hostname: str | None = None) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"mail security must be one of {', '.join(SECURITY_MODES)}")
        if not host or not from_address:
            raise ValueError("mail host and from_address must not be empty")
        if username and security == "none":
            raise ValueError("an SMTP login needs TLS (security starttls or tls): it would "
                             "send the password in clear")
        _single_line(from_address, "from_address")
        self.host = host
        self.port = port
        self.from_address = from_address
        self.security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.local_hostname = local_hostname or socket.getfqdn()
        self._tls = ssl.create_default_context(cafile=ca_file or None)

    def __repr__(self) -> str:  # keeps the password out of tracebacks and logs
        return f"SmtpMailer({self.host!r}, {self.port}, security={self.security!r})"

    def _message(self, to: str, subject: str, text: str) -> EmailMessage:
        _single_line(to, "to")
        _single_line(subject, "subject")
        message = EmailMessage()
        message["From"] = self.from_address
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        domain = self.from_address.rpartition("@")[2] or None
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(text, charset="utf-8")
        return message

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.local_hostname,
                                    timeout=self.timeout, context=self._tls)
        smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname,
                            timeout=self.timeout)
        if self.security == "starttls":
            try:
                smtp.starttls(context=self._tls)
            except BaseException:
                smtp.close()
                raise
        return smtp

    def send(self, to: str, subject: str, text: str) -> str:
        """Send one message (:meth:`MailGateway.send`); never retried."""
        message = self._message(to, subject, text)
        step = "connection"
        try:
            smtp = self._connect()
            with smtp:
                if self.username:
                    step = "login"
                    smtp.login(self.username, self._password)
                step = "delivery"
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _text in exc.recipients.values()})
            raise MailGatewayError(f"mail relay {self.host}: recipient refused "
                                   f"({', '.join(map(str, codes))})") from None
        except smtplib.SMTPNotSupportedError:
            raise MailGatewayError(f"mail relay {self.host}: {step} needs an extension the "
                                   "relay does not offer (STARTTLS, AUTH or SMTPUTF8)") from None
        except smtplib.SMTPResponseException as exc:
            raise MailGatewayError(f"mail relay {self.host}: {step} refused "
                                   f"({exc.smtp_code})") from None
        except ssl.SSLError as exc:
            raise MailGatewayError(f"mail relay {self.host}: TLS failed "
                                   f"({exc.reason or type(exc).__name__})") from None
        except TimeoutError:
            raise MailGatewayError(f"mail relay {self.host}: {step} timed out") from None
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib turns a timeout while it waits for an answer into this.
            what = "timed out" if isinstance(exc.__context__, TimeoutError) else (
                "failed (the relay closed the connection)")
            raise MailGatewayError(f"mail relay {self.host}: {step} {what}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise MailGatewayError(f"mail relay {self.host}: {step} failed "
                                   f"({type(exc).__name__})") from None
        return str(message["Message-ID"])


def _single_line(value: str, name: str) -> None:
    if not isinstance(value, str) or "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"mail {name} must be one line")


def from_settings(settings: Mapping[str, Any]) -> SmtpMailer | None:
    """A mailer configured by the ``[mail]`` settings section.

    :returns: None when ``mail.host`` is empty (no mail configured).
    :raises ValueError: an invalid combination (see :class:`SmtpMailer`), or
        ``security = "none"`` to a relay other than a loopback one in
        production mode (the messages carry verification links).
    """
    mail = settings["mail"]
    if not mail["host"]:
        return None
    if (settings["mode"] == "production" and mail["security"] == "none"
            and not is_loopback(mail["host"])):
        raise ValueError("setting mail.security \"none\" sends mail in clear: in production "
                         "mode it is allowed only to a relay on this machine (localhost)")
    try:
        return SmtpMailer(mail["host"], mail["port"], mail["from_address"],
                          security=mail["security"], username=mail["username"],
                          password=mail["password"], timeout=mail["timeout"],
                          ca_file=mail["ca_file"])
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"setting mail.ca_file: cannot load {mail['ca_file']} "
                         f"({type(exc).__name__})") from None
    except ValueError as exc:
        raise ValueError(f"setting mail: {exc}") from None
